// Command qqbench is a load generator for qqd built on the client library.
// It only talks to loopback addresses (127.0.0.0/8 and ::1).
//
// Usage:
//
//	qqbench [global flags] <dm|idle|fanin|offline|history|sweep|conns|slowloris|regflood> [flags]
//	qqbench fill --db DATA_DIR/qq.db --messages N --users U [flags]
//	qqbench fill --storage pebble --db DATA_DIR/qq.pebble --messages N --users U [flags]
//	qqbench report [--format md|csv] FILE...
//
// Flags may be given before or after the scenario name. --transport ws
// runs a scenario over qqd's WebSocket gateway (web.listen) instead of
// TCP, through daemon/web.Dial. fill does not talk to qqd: it appends
// messages to a stopped qqd's SQLite database through the storage
// plugin's own code, to measure qqd on a large history (history then
// times history and offline calls). See docs/performance.md for the
// method and a reproduction.
//
// sweep steps the open-loop dm rate up from --from until qqd saturates,
// writes one CSV row per step and draws p50/p99 latency against the
// delivered rate as an SVG chart (sweep.go, svg.go).
//
// conns, slowloris and regflood attack qqd from many loopback source
// addresses while a probe measures what other clients get (attack.go;
// client/qqbench/exhaustion.sh runs them, docs/operations.md has the
// figures).
//
// report reads the JSON lines of many runs and prints the median and
// min–max of each figure per --label (report.go); make perf
// (client/qqbench/perf.sh) runs the whole suite and ends with it.
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
	Transport string // tcp, or ws: qqd's WebSocket gateway at Addr
	Users     int
	Duration  time.Duration
	Warmup    time.Duration
	Settle    time.Duration
	Drain     time.Duration
	BodyBytes int
	// First marks every send "first" (client.SendFirst): its cid is new,
	// so qqd skips the de-duplication lookup. False sends with SendCID,
	// as a client that does not know the extension.
	First bool
	// QQDPIDs are qqd processes (one per node): CPU and RSS are summed
	// over each and all its descendants (the plugin processes).
	QQDPIDs []int
	// PGPIDs are PostgreSQL postmasters: their CPU, with their backends',
	// is reported apart (pg_cpu_s). NATSPIDs are processes that run NATS
	// servers (qqcluster runs them in-process): their own CPU, without
	// descendants, is reported apart too (nats_cpu_s).
	PGPIDs   []int
	NATSPIDs []int
	// RecipientAddr, when set, splits dm: u0..u<Users/2-1> send, from
	// --addr, only to u<Users/2>..u<Users-1>, which connect to these
	// addresses (comma-separated): the cross-node push of a cluster.
	RecipientAddr string
	JSON          bool
	Seed          uint64
	Register      bool
	Password      string
	Rate          float64
	Window        int
	Messages      int
	Members       int // group: the group's size (--users of them online)
	// conns, slowloris, regflood (attack.go)
	Conns      int
	PerAddr    int
	FirstAddr  int
	ProbeEvery time.Duration
	Sweep      SweepConfig
	Label      string // copied into the JSON line, for report

	// fill
	DB              string
	Storage         string // fill: sqlite or pebble
	PendingFraction float64
	Batch           int

	Scenario string
	// Progress receives a progress line every few seconds for runs longer
	// than 10 s; nil means none.
	Progress io.Writer
}

// DefaultConfig returns the flag defaults.
func DefaultConfig() Config {
	return Config{
		Addr:       "127.0.0.1:5190",
		Transport:  "tcp",
		Users:      10,
		Duration:   10 * time.Second,
		Warmup:     time.Second,
		Drain:      5 * time.Second,
		BodyBytes:  100,
		First:      true,
		Seed:       1,
		Password:   "bench-password",
		Window:     8,
		Messages:   10000,
		Members:    500,
		Conns:      20000,
		PerAddr:    16,
		ProbeEvery: 100 * time.Millisecond,
		Sweep:      DefaultSweepConfig(),

		PendingFraction: 0.01,
		Storage:         "sqlite",
		Batch:           10000,
	}
}

// registerFlags binds every flag to c, with c's current values as defaults,
// so that flags given after the scenario name keep those given before it.
func registerFlags(fs *flag.FlagSet, c *Config) {
	fs.StringVar(&c.Addr, "addr", c.Addr, "qqd address (loopback only); a comma-separated list spreads the users: u<i> connects to the (i mod n)-th")
	fs.StringVar(&c.RecipientAddr, "recipient-addr", c.RecipientAddr, "dm: split the users: the first half send, from --addr, only to the second half, connected to these addresses (comma-separated; e.g. another cluster node, for the cross-node push)")
	fs.StringVar(&c.Transport, "transport", c.Transport, "tcp, or ws: connect over qqd's WebSocket gateway (--addr is then web.listen's)")
	fs.IntVar(&c.Users, "users", c.Users, "number of users u0..uN-1")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "measured duration")
	fs.DurationVar(&c.Warmup, "warmup", c.Warmup, "unmeasured warm-up before the measured duration")
	fs.DurationVar(&c.Settle, "settle", c.Settle, "idle: wait this long after logins before the settled RSS reading")
	fs.DurationVar(&c.Drain, "drain", c.Drain, "grace period for in-flight sends and pushes after the run")
	fs.IntVar(&c.BodyBytes, "body-bytes", c.BodyBytes, "message body size in bytes")
	fs.BoolVar(&c.First, "first", c.First, `dm, fanin, group: mark every send "first" (its cid is new: qqd skips the de-duplication lookup); --first=false sends as a client without the extension`)
	fs.Var(pidList{&c.QQDPIDs}, "qqd-pid", "pid of qqd, to report CPU and RSS of it and its plugin processes; a comma-separated list (one per node) sums them")
	fs.Var(pidList{&c.PGPIDs}, "pg-pid", "pid of PostgreSQL's postmaster (comma-separated list): its and its backends' CPU, reported apart from qqd's")
	fs.Var(pidList{&c.NATSPIDs}, "nats-pid", "pid of a process running NATS servers (comma-separated list; e.g. qqcluster): its own CPU, without descendants, reported apart")
	fs.BoolVar(&c.JSON, "json", c.JSON, "print only the JSON result line")
	fs.StringVar(&c.Label, "label", c.Label, "run label copied into the JSON line (qqbench report groups by it)")
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "seed for recipients and send phases")
	fs.BoolVar(&c.Register, "register", c.Register, "register the users first (user_exists is fine)")
	fs.StringVar(&c.Password, "password", c.Password, "password of the users")
	fs.Float64Var(&c.Rate, "rate", c.Rate, "dm/fanin/history: open loop at this total rate in msg/s or calls/s (0: closed loop)")
	registerSweepFlags(fs, &c.Sweep)
	fs.IntVar(&c.Window, "window", c.Window, "dm/fanin/history closed loop and offline fill: sends or calls in flight per user")
	fs.IntVar(&c.Conns, "conns", c.Conns, "conns, slowloris: attack connections; regflood: registrations")
	fs.IntVar(&c.PerAddr, "per-addr", c.PerAddr, "conns, slowloris, regflood: attack connections or registrations per source address (127.1.x.y)")
	fs.IntVar(&c.FirstAddr, "first-addr", c.FirstAddr, "conns, slowloris, regflood: index of the first source address (for several qqbench processes)")
	fs.DurationVar(&c.ProbeEvery, "probe-every", c.ProbeEvery, "conns, slowloris, regflood: the probe's ping and send interval")
	fs.IntVar(&c.Members, "members", c.Members, "group: members of the group (u0..uM-1; the first --users are online and send)")
	fs.IntVar(&c.Messages, "messages", c.Messages, "offline: messages queued for the offline user; fill: messages to add")
	fs.StringVar(&c.DB, "db", c.DB, "fill: the database of a stopped qqd: the sqlite plugin's file (<data_dir>/qq.db) or the pebble plugin's directory (<data_dir>/qq.pebble)")
	fs.StringVar(&c.Storage, "storage", c.Storage, "fill: the storage plugin whose database --db is: sqlite or pebble")
	fs.Float64Var(&c.PendingFraction, "pending-fraction", c.PendingFraction, "fill: fraction of the messages left pending (not acked)")
	fs.IntVar(&c.Batch, "batch", c.Batch, "fill: messages per write transaction")
}

func usage(fs *flag.FlagSet) func() {
	return func() {
		fmt.Fprintf(fs.Output(), "usage: qqbench [flags] <dm|idle|fanin|group|offline|history|fill|sweep|conns|slowloris|regflood> [flags]\n\n"+
			"  dm       every user sends to random others (--rate R open loop, else --window W closed loop)\n"+
			"  fanin    every user sends to u0, which acks everything\n"+
			"  group    a group of --members (u0 adds them); --users of them online, each sending to the group\n"+
			"           (--rate R open loop, else --window W closed loop); every other online member gets each pushed\n"+
			"  idle     hold --users logged-in connections for --duration; RSS per connection\n"+
			"  offline  queue --messages for an offline user, then drain with offline pages + ack\n"+
			"  sweep    open-loop dm at --from, then +--step (or ×--factor) per step, until saturation or --to;\n"+
			"           --duration per step; --csv FILE, --svg FILE (p50/p99 latency against delivered rate)\n"+
			"  history  every user calls history (random peer, limit 50, some pages back) and offline (limit 100)\n"+
			"           (--rate R calls/s open loop, else --window W closed loop)\n"+
			"  fill     append --messages between random pairs of --users to --db, a stopped qqd's qq.db\n"+
			"  conns    hold --conns connections that never log in (--per-addr per source address 127.1.x.y) for --duration\n"+
			"  slowloris  the same, each sending a login frame one byte per second\n"+
			"  regflood register --conns new accounts, --per-addr per source address, --window at a time\n"+
			"           (these three: a probe, u0 and u1 from 127.0.0.1, pings and sends every --probe-every and logs in\n"+
			"           anew every second; peak memory of qqd and its plugins with --qqd-pid)\n\n")
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
	if err := c.validateAddrs(); err != nil {
		return err
	}
	if c.Transport != "tcp" && c.Transport != "ws" {
		return fmt.Errorf("--transport %q: want tcp or ws", c.Transport)
	}
	switch c.Scenario {
	case "dm", "fanin":
		if c.Users < 2 {
			return fmt.Errorf("%s needs --users >= 2", c.Scenario)
		}
	case "group":
		if c.Users < 2 || c.Members < c.Users {
			return errors.New("group needs --users >= 2 and --members >= --users")
		}
	case "idle":
		if c.Users < 1 {
			return errors.New("idle needs --users >= 1")
		}
	case "offline":
		if c.Messages < 1 {
			return errors.New("offline needs --messages >= 1")
		}
	case "history":
		if c.Users < 2 {
			return errors.New("history needs --users >= 2")
		}
	case "conns", "slowloris", "regflood":
		if c.Conns < 1 || c.PerAddr < 1 || c.ProbeEvery <= 0 {
			return fmt.Errorf("%s needs --conns >= 1, --per-addr >= 1 and --probe-every > 0", c.Scenario)
		}
		if c.FirstAddr < 0 || c.FirstAddr+c.Conns/c.PerAddr >= 1<<23 {
			return fmt.Errorf("%s: --conns / --per-addr plus --first-addr must stay below 2^23 (source addresses in 127.1.0.0-127.128.255.255)", c.Scenario)
		}
	case "fill":
		if err := c.validateFill(); err != nil {
			return err
		}
	case "sweep":
		if c.Users < 2 {
			return errors.New("sweep needs --users >= 2")
		}
		if c.Rate != 0 {
			return errors.New("sweep sets the rate itself: use --from, --step or --factor, and --to")
		}
		if err := c.Sweep.validate(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown scenario %q (want dm, idle, fanin, group, offline, history, fill, sweep, conns, slowloris or regflood)", c.Scenario)
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
	if len(args) > 0 && args[0] == "report" {
		return runReport(args[1:], stdout, stderr)
	}
	cfg, err := parseArgs(args, stderr)
	if err != nil {
		return err
	}
	if cfg.Label != "" {
		lw := newLabelWriter(stdout, cfg.Label)
		defer lw.Flush()
		stdout = lw
	}
	if cfg.Duration+cfg.Warmup > 10*time.Second {
		cfg.Progress = stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cfg.Scenario == "sweep" {
		return runSweepCmd(ctx, cfg, stdout, stderr)
	}
	if cfg.Scenario == "fill" {
		return runFill(ctx, cfg, stdout, stderr)
	}
	res, err := Run(ctx, cfg)
	if err != nil {
		return err
	}
	if !cfg.JSON {
		res.WriteSummary(stdout)
	}
	return res.WriteJSON(stdout)
}
