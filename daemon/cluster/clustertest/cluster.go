package clustertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Postgres is the PostgreSQL server the nodes of a [Cluster] share. The
// pgtest package's *Server (plugins/postgres/pgtest) satisfies it; see
// [StartPostgres].
type Postgres interface {
	// DSN returns the connection string of database db.
	DSN(db string) string
	// CreateDatabase creates database name and returns its DSN.
	CreateDatabase(ctx context.Context, name string) (string, error)
	// Stop stops the server (its data stays); Start starts it again.
	Stop() error
	Start() error
	// Close stops the server for good.
	Close() error
}

// ErrNoPostgres is StartPostgres's error in a build without PostgreSQL
// support (without the qqpg build tag).
var ErrNoPostgres = errors.New("clustertest: no PostgreSQL: install postgresql-15, or pass the DSN of a running PostgreSQL")

// DatabaseName is the database Up creates for the cluster.
const DatabaseName = "qq"

// ClusterOptions describe a cluster for [Up].
type ClusterOptions struct {
	// Dir holds everything: pg/, nats/, bin/, one directory per node,
	// and the control socket. It is created; nothing in it is removed.
	Dir string
	// Nodes names the qqd nodes; default a, b, c.
	Nodes []string
	// NATS is the number of NATS servers; default 3.
	NATS int
	// LBListen is the load balancer's address; default 127.0.0.1:5190.
	LBListen string
	// Binary is the qqd to run; "" builds one into Dir/bin.
	Binary string
	// DSN is a PostgreSQL database to use; "" starts a PostgreSQL of
	// its own in Dir/pg with StartPostgres.
	DSN string
	// StartPostgres starts PostgreSQL when DSN is ""; nil means the
	// package's [StartPostgres].
	StartPostgres func(dir string) (Postgres, error)
	// Storage is every node's storage.plugin; default postgres.
	Storage string
	// Config holds more qq.yaml keys for every node (see
	// NodeOptions.Config).
	Config map[string]any
	// Env holds more environment variables for every node (see
	// NodeOptions.Env).
	Env []string
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// Cluster is a running qq cluster on loopback: PostgreSQL, NATS servers,
// qqd nodes and a load balancer in front of the nodes.
type Cluster struct {
	Dir string
	// PG is the PostgreSQL started by Up; nil when a DSN was given.
	PG Postgres
	// DSN is the database every node uses.
	DSN   string
	NATS  *NATSCluster
	Nodes []*Node
	LB    *LB

	closeOnce sync.Once
	closeErr  error
}

// Up starts a cluster: PostgreSQL (unless opts.DSN), the NATS servers, the
// nodes one after the other (each ready on /readyz), and the load
// balancer. On error everything started is stopped. Close stops it.
func Up(ctx context.Context, opts ClusterOptions) (_ *Cluster, err error) {
	if opts.Dir == "" {
		return nil, errors.New("cluster: no Dir")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	if len(opts.Nodes) == 0 {
		opts.Nodes = []string{"a", "b", "c"}
	}
	if opts.NATS == 0 {
		opts.NATS = 3
	}
	if opts.LBListen == "" {
		opts.LBListen = "127.0.0.1:5190"
	}
	if opts.StartPostgres == nil {
		opts.StartPostgres = StartPostgres
	}
	logf := func(format string, args ...any) {
		if opts.Log != nil {
			fmt.Fprintf(opts.Log, format+"\n", args...)
		}
	}
	// 0755: PostgreSQL runs as the postgres user when this runs as root,
	// and must reach its directory below dir.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	c := &Cluster{Dir: dir, DSN: opts.DSN}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()

	if c.DSN == "" {
		logf("starting PostgreSQL in %s", filepath.Join(dir, "pg"))
		if c.PG, err = opts.StartPostgres(filepath.Join(dir, "pg")); err != nil {
			return nil, fmt.Errorf("postgres: %w", err)
		}
		if c.DSN, err = c.PG.CreateDatabase(ctx, DatabaseName); err != nil {
			// A data directory kept from an earlier run has it already.
			if !strings.Contains(err.Error(), "already exists") {
				return nil, fmt.Errorf("postgres: %w", err)
			}
			c.DSN = c.PG.DSN(DatabaseName)
		}
	}
	bin := opts.Binary
	if bin == "" {
		logf("building qqd into %s", filepath.Join(dir, "bin"))
		if bin, err = BuildQQD(ctx, filepath.Join(dir, "bin")); err != nil {
			return nil, err
		}
	}
	logf("starting %d NATS servers", opts.NATS)
	natsDir := filepath.Join(dir, "nats")
	if err := os.MkdirAll(natsDir, 0o700); err != nil {
		return nil, err
	}
	if c.NATS, err = StartNATS(natsDir, opts.NATS); err != nil {
		return nil, err
	}
	var backends []Backend
	for _, name := range opts.Nodes {
		logf("starting node %s", name)
		n, err := NewNode(NodeOptions{
			Name: name, Dir: filepath.Join(dir, name), Binary: bin,
			Storage: opts.Storage, DSN: c.DSN,
			Cluster: true, NATSURLs: c.NATS.URLs(),
			Config: opts.Config, Env: opts.Env,
		})
		if err != nil {
			return nil, err
		}
		c.Nodes = append(c.Nodes, n)
		if err := n.Start(ctx); err != nil {
			return nil, err
		}
		backends = append(backends, n.Backend())
	}
	if c.LB, err = NewLB(opts.LBListen, backends); err != nil {
		return nil, err
	}
	return c, nil
}

// Node returns the node named name, or nil.
func (c *Cluster) Node(name string) *Node {
	for _, n := range c.Nodes {
		if n.Name() == name {
			return n
		}
	}
	return nil
}

// Describe writes the cluster's addresses for a person.
func (c *Cluster) Describe(w io.Writer) {
	fmt.Fprintf(w, "qq cluster in %s\n", c.Dir)
	if c.LB != nil {
		fmt.Fprintf(w, "  load balancer  %s   (clients connect here: qq -addr %s)\n", c.LB.Addr(), c.LB.Addr())
	}
	for _, n := range c.Nodes {
		state := "stopped"
		if n.Running() {
			state = fmt.Sprintf("pid %d", n.Pid())
		}
		fmt.Fprintf(w, "  node %-8s  client %s  metrics http://%s/metrics  ready %s\n", n.Name(), n.Addr(), n.MetricsAddr(), n.ReadyURL())
		fmt.Fprintf(w, "  %-13s  admin %s  log %s  (%s)\n", "", n.AdminSocket(), n.LogPath(), state)
	}
	if c.NATS != nil {
		for i, u := range c.NATS.URLs() {
			state := "running"
			if !c.NATS.Running(i) {
				state = "stopped"
			}
			fmt.Fprintf(w, "  nats %-8d  %s  (%s)\n", i, u, state)
		}
	}
	fmt.Fprintf(w, "  postgres       %s\n", c.DSN)
}

// Close stops the load balancer, the nodes (SIGTERM, concurrently), the
// NATS servers and PostgreSQL, in that order, and returns the errors.
// Nothing in Dir is removed.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		var errs []error
		if c.LB != nil {
			errs = append(errs, c.LB.Close())
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, n := range c.Nodes {
			wg.Go(func() {
				if err := n.Stop(); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if c.NATS != nil {
			c.NATS.Close()
		}
		if c.PG != nil {
			if err := c.PG.Close(); err != nil {
				errs = append(errs, fmt.Errorf("postgres: %w", err))
			}
		}
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}
