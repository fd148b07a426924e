package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/qqchat/qq/daemon/cluster/clustertest"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "qqcluster:", err)
		os.Exit(1)
	}
}

const usage = `usage: qqcluster COMMAND -dir D [flags]

commands:
  up                start PostgreSQL, NATS, the nodes and the balancer; run until ^C
  down              stop the cluster running in D
  status            print its addresses
  kill|start|stop   a node: -node NAME
  nats-stop|nats-start  a NATS server: -nats I
  pg-stop|pg-start  PostgreSQL
`

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		return errors.New("no command")
	}
	cmd := args[0]
	fs := flag.NewFlagSet("qqcluster "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "./qqcluster-data", "the cluster's `directory`")
	lb := fs.String("lb", "127.0.0.1:5190", "(up) the load balancer's `address`")
	dsn := fs.String("dsn", "", "(up) use this PostgreSQL `database` instead of starting one")
	clean := fs.Bool("clean", false, "(up) remove the directory when the cluster stops")
	storage := fs.String("storage", "postgres", "(up) the nodes' storage plugin; another than postgres runs them standalone, each on its own data, cluster mode off (to try the tooling without PostgreSQL)")
	qqd := fs.String("qqd", "", "(up) the qqd `binary` to run (default: build one into DIR/bin)")
	node := fs.String("node", "", "(kill, start, stop) the node's `name`")
	natsIdx := fs.String("nats", "", "(nats-stop, nats-start) the NATS server's `index`, from 0")
	nodes := fs.String("nodes", "a,b,c", "(up) the nodes' `names`, comma-separated")
	natsServers := fs.Int("nats-servers", 3, "(up) how many NATS servers to run")
	standalone := fs.Bool("standalone", false, "(up) cluster mode off: each node runs alone (on postgres, all on the same database: use it with -nodes a, for one qqd on PostgreSQL)")
	configFile := fs.String("config", "", "(up) a YAML `file` of more qq.yaml keys for every node (top-level keys, nested or dotted: limits, filters, log.level, ...)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	switch cmd {
	case "up":
		opts := clustertest.ClusterOptions{Dir: *dir, LBListen: *lb, DSN: *dsn, Storage: *storage, Binary: *qqd, Log: stderr,
			NATS: *natsServers, Config: map[string]any{}}
		for n := range strings.SplitSeq(*nodes, ",") {
			if n = strings.TrimSpace(n); n != "" {
				opts.Nodes = append(opts.Nodes, n)
			}
		}
		if len(opts.Nodes) == 0 || *natsServers < 1 {
			return errors.New("up needs -nodes with a name and -nats-servers >= 1")
		}
		if *configFile != "" {
			extra, err := readConfig(*configFile)
			if err != nil {
				return err
			}
			maps.Copy(opts.Config, extra)
		}
		if *storage != "postgres" {
			fmt.Fprintf(stderr, "storage %s: the nodes run standalone with cluster mode off, each on its own data; not a cluster\n", *storage)
			opts.Config["cluster.enabled"] = false
			if opts.DSN == "" {
				opts.DSN = "none"
			}
		} else if *standalone {
			fmt.Fprintln(stderr, "-standalone: cluster mode off; the nodes share the PostgreSQL database but not a bus")
			opts.Config["cluster.enabled"] = false
		}
		return up(ctx, opts, *clean, stdout)
	case "down":
		ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		return clustertest.Down(ctx, *dir)
	}
	line := cmd
	switch cmd {
	case "status", "pg-stop", "pg-start":
	case "kill", "start", "stop":
		if *node == "" {
			return fmt.Errorf("%s needs -node", cmd)
		}
		line += " " + *node
	case "nats-stop", "nats-start":
		if *natsIdx == "" {
			return fmt.Errorf("%s needs -nats", cmd)
		}
		line += " " + *natsIdx
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	out, err := clustertest.Control(ctx, *dir, line)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, out)
	return nil
}

// readConfig reads a YAML file of qq.yaml keys for ClusterOptions.Config.
func readConfig(path string) (map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := map[string]any{}
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("-config %s: %w", path, err)
	}
	return m, nil
}

// up runs the cluster until ctx ends.
func up(ctx context.Context, opts clustertest.ClusterOptions, clean bool, stdout io.Writer) (err error) {
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil { // see clustertest.Up
		return err
	}
	ln, err := clustertest.ListenControl(opts.Dir)
	if err != nil {
		return err
	}
	defer ln.Close()
	if err := clustertest.WritePidFile(opts.Dir); err != nil {
		return err
	}
	defer clustertest.RemovePidFile(opts.Dir)
	c, err := clustertest.Up(ctx, opts)
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(opts.Log, "stopping the cluster")
		err = errors.Join(err, c.Close())
		if clean {
			ln.Close()
			err = errors.Join(err, os.RemoveAll(c.Dir))
		}
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.ServeControl(ln)
	}()
	defer func() {
		ln.Close()
		<-done
	}()
	c.Describe(stdout)
	fmt.Fprintf(stdout, "control: go run ./daemon/cluster/qqcluster kill|start|stop -dir %s -node b (and status, nats-stop, nats-start, pg-stop, pg-start, down)\n", opts.Dir)
	fmt.Fprintln(stdout, "running; ^C or `make cluster-down` stops it")
	<-ctx.Done()
	return nil
}
