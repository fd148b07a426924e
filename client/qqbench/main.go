// Command qqbench is a load generator for qqd built on the client library.
// It only talks to loopback addresses (127.0.0.0/8 and ::1).
//
// Usage:
//
//	qqbench [global flags] <dm|idle|fanin|offline> [flags]
//
// Flags may be given before or after the scenario name. See
// docs/performance.md for the method and a reproduction.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "qqbench:", err)
		os.Exit(1)
	}
}

// Config holds every flag of qqbench.
type Config struct {
	Addr      string
	Users     int
	Duration  time.Duration
	Warmup    time.Duration
	Settle    time.Duration
	Drain     time.Duration
	BodyBytes int
	QQDPID    int
	JSON      bool
	Seed      uint64
	Register  bool
	Password  string
	Rate      float64
	Window    int
	Messages  int

	Scenario string
	// Progress receives a progress line every few seconds for runs longer
	// than 10 s; nil means none.
	Progress io.Writer
}

// DefaultConfig returns the flag defaults.
func DefaultConfig() Config {
	return Config{
		Addr:      "127.0.0.1:5190",
		Users:     10,
		Duration:  10 * time.Second,
		Warmup:    time.Second,
		Drain:     5 * time.Second,
		BodyBytes: 100,
		Seed:      1,
		Password:  "bench-password",
		Window:    8,
		Messages:  10000,
	}
}

// registerFlags binds every flag to c, with c's current values as defaults,
// so that flags given after the scenario name keep those given before it.
func registerFlags(fs *flag.FlagSet, c *Config) {
	fs.StringVar(&c.Addr, "addr", c.Addr, "qqd address (loopback only)")
	fs.IntVar(&c.Users, "users", c.Users, "number of users u0..uN-1")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "measured duration")
	fs.DurationVar(&c.Warmup, "warmup", c.Warmup, "unmeasured warm-up before the measured duration")
	fs.DurationVar(&c.Settle, "settle", c.Settle, "idle: wait this long after logins before the settled RSS reading")
	fs.DurationVar(&c.Drain, "drain", c.Drain, "grace period for in-flight sends and pushes after the run")
	fs.IntVar(&c.BodyBytes, "body-bytes", c.BodyBytes, "message body size in bytes")
	fs.IntVar(&c.QQDPID, "qqd-pid", c.QQDPID, "pid of qqd, to report CPU and RSS of it and its plugin processes")
	fs.BoolVar(&c.JSON, "json", c.JSON, "print only the JSON result line")
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "seed for recipients and send phases")
	fs.BoolVar(&c.Register, "register", c.Register, "register the users first (user_exists is fine)")
	fs.StringVar(&c.Password, "password", c.Password, "password of the users")
	fs.Float64Var(&c.Rate, "rate", c.Rate, "dm/fanin: open loop at this total rate in msg/s (0: closed loop)")
	fs.IntVar(&c.Window, "window", c.Window, "dm/fanin closed loop and offline fill: sends in flight per user")
	fs.IntVar(&c.Messages, "messages", c.Messages, "offline: messages queued for the offline user")
}

func usage(fs *flag.FlagSet) func() {
	return func() {
		fmt.Fprintf(fs.Output(), "usage: qqbench [flags] <dm|idle|fanin|offline> [flags]\n\n"+
			"  dm       every user sends to random others (--rate R open loop, else --window W closed loop)\n"+
			"  fanin    every user sends to u0, which acks everything\n"+
			"  idle     hold --users logged-in connections for --duration; RSS per connection\n"+
			"  offline  queue --messages for an offline user, then drain with offline pages + ack\n\n")
		fs.PrintDefaults()
	}
}

// parseArgs parses the command line into a Config.
func parseArgs(args []string, stderr io.Writer) (Config, error) {
	c := DefaultConfig()
	fs := flag.NewFlagSet("qqbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = usage(fs)
	registerFlags(fs, &c)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return c, errors.New("missing scenario")
	}
	c.Scenario = fs.Arg(0)
	fs2 := flag.NewFlagSet("qqbench "+c.Scenario, flag.ContinueOnError)
	fs2.SetOutput(stderr)
	fs2.Usage = usage(fs2)
	registerFlags(fs2, &c)
	if err := fs2.Parse(fs.Args()[1:]); err != nil {
		return c, err
	}
	if fs2.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs2.Args())
	}
	return c, c.validate()
}

func (c *Config) validate() error {
	if err := CheckLoopback(c.Addr); err != nil {
		return err
	}
	switch c.Scenario {
	case "dm", "fanin":
		if c.Users < 2 {
			return fmt.Errorf("%s needs --users >= 2", c.Scenario)
		}
	case "idle":
		if c.Users < 1 {
			return errors.New("idle needs --users >= 1")
		}
	case "offline":
		if c.Messages < 1 {
			return errors.New("offline needs --messages >= 1")
		}
	default:
		return fmt.Errorf("unknown scenario %q (want dm, idle, fanin or offline)", c.Scenario)
	}
	if c.Window < 1 {
		return errors.New("--window must be >= 1")
	}
	if c.Rate < 0 || c.Duration <= 0 || c.Warmup < 0 || c.Drain < 0 || c.Settle < 0 {
		return errors.New("--rate, --duration, --warmup, --drain and --settle must not be negative (--duration > 0)")
	}
	if c.BodyBytes < 1 {
		return errors.New("--body-bytes must be >= 1")
	}
	return nil
}

func run(args []string, stdout, stderr io.Writer) error {
	cfg, err := parseArgs(args, stderr)
	if err != nil {
		return err
	}
	if cfg.Duration+cfg.Warmup > 10*time.Second {
		cfg.Progress = stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := Run(ctx, cfg)
	if err != nil {
		return err
	}
	if !cfg.JSON {
		res.WriteSummary(stdout)
	}
	return res.WriteJSON(stdout)
}
