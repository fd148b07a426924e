package clustertest_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qqchat/qq/daemon/cluster/clustertest"
)

// waitTimeout bounds each wait of these tests.
const waitTimeout = 15 * time.Second

// connect connects to urls, never giving up reconnecting, and closes the
// connection when the test ends.
func connect(t *testing.T, urls []string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	opts = append([]nats.Option{nats.DontRandomize(), nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond),
		nats.PingInterval(200 * time.Millisecond), nats.MaxPingsOutstanding(2)}, opts...)
	nc, err := nats.Connect(strings.Join(urls, ","), opts...)
	if err != nil {
		t.Fatalf("connect %v: %v", urls, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// reaches publishes on pub until sub's subscription to subject gets the
// message (interest crosses routes asynchronously), or fails the test.
func reaches(t *testing.T, pub *nats.Conn, sub *nats.Subscription, subject string) {
	t.Helper()
	body := []byte(fmt.Sprintf("hello %d", time.Now().UnixNano()))
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		if err := pub.Publish(subject, body); err != nil && pub.IsClosed() {
			t.Fatalf("publish %s: %v", subject, err)
		}
		for {
			m, err := sub.NextMsg(50 * time.Millisecond)
			if err != nil {
				break
			}
			if string(m.Data) == string(body) {
				return
			}
		}
	}
	t.Fatalf("a message published through %s did not reach the subscriber on %s", pub.ConnectedUrl(), sub.Subject)
}

func TestNATSCluster(t *testing.T) {
	nc3, err := clustertest.StartNATS(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	defer nc3.Close()
	urls := nc3.URLs()
	if len(urls) != 3 {
		t.Fatalf("URLs() = %v, want 3", urls)
	}
	for i := range 3 {
		s := nc3.Server(i)
		if s == nil || s.NumRemotes() != 2 {
			t.Fatalf("server %d: %v, want 2 peers", i, s)
		}
		if got := s.ClusterName(); got != clustertest.NATSClusterName {
			t.Errorf("server %d cluster name = %q, want %q", i, got, clustertest.NATSClusterName)
		}
	}

	on0 := connect(t, urls[:1])
	on2 := connect(t, urls[2:])
	sub, err := on2.SubscribeSync("qq.test")
	if err != nil {
		t.Fatal(err)
	}
	if err := on2.Flush(); err != nil {
		t.Fatal(err)
	}
	reaches(t, on0, sub, "qq.test")

	// A client with every URL, connected to server 1 first.
	reconnected := make(chan struct{}, 1)
	all := connect(t, []string{urls[1], urls[0], urls[2]}, nats.ReconnectHandler(func(*nats.Conn) {
		select {
		case reconnected <- struct{}{}:
		default:
		}
	}))
	if got := all.ConnectedUrl(); got != urls[1] {
		t.Fatalf("connected to %s, want %s", got, urls[1])
	}

	nc3.Stop(1)
	if nc3.Running(1) || nc3.Server(1) != nil {
		t.Fatal("server 1 still running after Stop")
	}
	select {
	case <-reconnected:
	case <-time.After(waitTimeout):
		t.Fatal("the client on server 1 did not reconnect to another server")
	}
	if got := all.ConnectedUrl(); got == urls[1] {
		t.Fatalf("reconnected to the stopped server %s", got)
	}
	reaches(t, all, sub, "qq.test")
	reaches(t, on0, sub, "qq.test")

	if err := nc3.Restart(1); err != nil {
		t.Fatal(err)
	}
	if err := nc3.Restart(1); err == nil {
		t.Error("Restart of a running server: no error")
	}
	if got := nc3.URLs(); strings.Join(got, ",") != strings.Join(urls, ",") {
		t.Fatalf("URLs after restart = %v, want %v", got, urls)
	}
	for i := range 3 {
		if n := nc3.Server(i).NumRemotes(); n != 2 {
			t.Fatalf("server %d has %d peers after the restart, want 2", i, n)
		}
	}
	// The restarted server carries traffic both ways again.
	on1 := connect(t, urls[1:2])
	reaches(t, on1, sub, "qq.test")
	sub1, err := on1.SubscribeSync("qq.back")
	if err != nil {
		t.Fatal(err)
	}
	if err := on1.Flush(); err != nil {
		t.Fatal(err)
	}
	reaches(t, all, sub1, "qq.back")
	reaches(t, on0, sub1, "qq.back")
}

func TestNATSOneServer(t *testing.T) {
	c, err := clustertest.StartNATS("", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	nc := connect(t, c.URLs())
	sub, err := nc.SubscribeSync("x")
	if err != nil {
		t.Fatal(err)
	}
	reaches(t, nc, sub, "x")
	if _, err := clustertest.StartNATS("", 0); err == nil {
		t.Error("StartNATS with 0 servers: no error")
	}
}
