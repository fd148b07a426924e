package clustertest

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// NATSClusterName is the name of the NATS cluster StartNATS forms.
const NATSClusterName = "qqtest"

// natsStartTimeout bounds how long a NATS server may take to accept
// clients, and a cluster to form its routes.
const natsStartTimeout = 10 * time.Second

// NATSCluster is n nats-server instances in this process, on 127.0.0.1,
// routed to each other as one cluster (core NATS, no JetStream). Its
// methods are safe for concurrent use.
type NATSCluster struct {
	dir string

	mu       sync.Mutex
	servers  []*server.Server // nil: stopped
	starting []bool           // Restart(i) in progress
	ports    []int            // client port of each server, kept across restarts
	routes   []int            // route (cluster) port of each server
}

// StartNATS starts n clustered nats-server instances on free loopback
// ports and returns once every server accepts clients and has a route to
// each of the others. Pings are short (a dead client or route is noticed
// within about a second). With dir not empty each server logs to
// dir/nats-<i>.log; otherwise they do not log. Close stops them.
func StartNATS(dir string, n int) (*NATSCluster, error) {
	if n < 1 {
		return nil, fmt.Errorf("start nats: %d servers", n)
	}
	c := &NATSCluster{dir: dir, servers: make([]*server.Server, n), starting: make([]bool, n), ports: make([]int, n), routes: make([]int, n)}
	for i := range n {
		// Port -1 is a random free port; the ones taken are kept for
		// Restart. Each server routes to those started before it, and
		// gossip completes the mesh.
		c.ports[i], c.routes[i] = server.RANDOM_PORT, server.RANDOM_PORT
		s, err := c.start(i, i)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.servers[i] = s
		c.ports[i] = s.Addr().(*net.TCPAddr).Port
		c.routes[i] = s.ClusterAddr().Port
	}
	if err := c.WaitRoutes(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// start starts server i with routes to the servers 0..upTo-1 other than
// itself (its ports from c.ports and c.routes).
func (c *NATSCluster) start(i, upTo int) (*server.Server, error) {
	opts := &server.Options{
		ServerName:  "nats-" + strconv.Itoa(i),
		Host:        "127.0.0.1",
		Port:        c.ports[i],
		NoSigs:      true,
		NoLog:       c.dir == "",
		MaxPingsOut: 2,
		// A client whose server died or hangs learns it within about a
		// second (the qqd side sets its own, shorter pings too).
		PingInterval: 500 * time.Millisecond,
		Cluster: server.ClusterOpts{
			Name:         NATSClusterName,
			Host:         "127.0.0.1",
			Port:         c.routes[i],
			PingInterval: 500 * time.Millisecond,
			MaxPingsOut:  2,
		},
	}
	if c.dir != "" {
		opts.LogFile = filepath.Join(c.dir, fmt.Sprintf("nats-%d.log", i))
	}
	for j := range upTo {
		if j != i {
			opts.Routes = append(opts.Routes, &url.URL{Scheme: "nats-route", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(c.routes[j]))})
		}
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("start nats server %d: %w", i, err)
	}
	if !opts.NoLog {
		s.ConfigureLogger()
	}
	s.Start()
	if !s.ReadyForConnections(natsStartTimeout) {
		s.Shutdown()
		s.WaitForShutdown()
		return nil, fmt.Errorf("start nats server %d: not ready within %v", i, natsStartTimeout)
	}
	return s, nil
}

// URLs returns the client URLs of all servers, stopped ones included
// (a client given them all reconnects to whichever runs).
func (c *NATSCluster) URLs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	urls := make([]string, len(c.ports))
	for i, p := range c.ports {
		urls[i] = "nats://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	}
	return urls
}

// URL returns the client URL of server i.
func (c *NATSCluster) URL(i int) string { return c.URLs()[i] }

// Len returns the number of servers, running or stopped.
func (c *NATSCluster) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.servers)
}

// Server returns server i, or nil while it is stopped.
func (c *NATSCluster) Server(i int) *server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.servers[i]
}

// Running reports whether server i runs.
func (c *NATSCluster) Running(i int) bool { return c.Server(i) != nil }

// Stop shuts server i down abruptly: its client connections and routes
// are closed at once, as when its machine dies (clients see the
// connection drop, not a graceful drain). Stopping a stopped server does
// nothing.
func (c *NATSCluster) Stop(i int) {
	c.mu.Lock()
	s := c.servers[i]
	c.servers[i] = nil
	c.mu.Unlock()
	if s != nil {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

// Restart starts stopped server i again on the same client and route
// ports, with routes to all the others, and waits until it has rejoined
// the cluster (a route to every running server). Restarting a running
// server is an error.
func (c *NATSCluster) Restart(i int) error {
	c.mu.Lock()
	if c.servers[i] != nil || c.starting[i] {
		c.mu.Unlock()
		return fmt.Errorf("restart nats server %d: running", i)
	}
	c.starting[i] = true
	c.mu.Unlock()
	// Not under c.mu: the other servers stay observable meanwhile.
	// c.ports and c.routes do not change after StartNATS.
	s, err := c.startRetrying(i)
	c.mu.Lock()
	c.starting[i] = false
	if err == nil {
		c.servers[i] = s
	}
	c.mu.Unlock()
	if err != nil {
		return err
	}
	return c.WaitRoutes()
}

// startRetrying starts server i with routes to all others, retrying
// while its ports may still linger from its last run.
func (c *NATSCluster) startRetrying(i int) (*server.Server, error) {
	deadline := time.Now().Add(natsStartTimeout)
	for {
		s, err := c.start(i, len(c.ports))
		if err == nil || time.Now().After(deadline) {
			return s, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitRoutes waits until every running server has a route to every other
// running server.
func (c *NATSCluster) WaitRoutes() error {
	deadline := time.Now().Add(natsStartTimeout)
	for {
		c.mu.Lock()
		var running []*server.Server
		for _, s := range c.servers {
			if s != nil {
				running = append(running, s)
			}
		}
		c.mu.Unlock()
		missing := ""
		for _, s := range running {
			// NumRemotes counts peer servers; NumRoutes counts route
			// connections, several per peer with route pooling.
			if s.NumRemotes() < len(running)-1 || s.NumRoutes() < len(running)-1 {
				missing = fmt.Sprintf("%s has %d of %d peers", s.Name(), s.NumRemotes(), len(running)-1)
				break
			}
		}
		if missing == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("nats cluster: routes did not form: " + missing)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Close stops every running server. The cluster is not usable afterwards.
func (c *NATSCluster) Close() {
	c.mu.Lock()
	n := len(c.servers)
	c.mu.Unlock()
	for i := range n {
		c.Stop(i)
	}
}
