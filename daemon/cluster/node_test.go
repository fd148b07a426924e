package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"go.uber.org/goleak"

	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/daemon/protocol"
)

// listHost is a Host that holds a fixed list of users and sessions (the
// node under test answers from it); it does no storage.
type listHost struct {
	users    []string
	sessions []Session
}

func (h *listHost) Pending(context.Context, string, int) ([]protocol.Message, bool, error) {
	return nil, false, nil
}
func (h *listHost) ProbeStorage(context.Context) error { return nil }
func (h *listHost) Fence(bool)                         {}
func (h *listHost) LocalUsers() []string               { return h.users }
func (h *listHost) LocalSessions() []Session           { return h.sessions }
func (h *listHost) Kick(string, string) int            { return 0 }
func (h *listHost) Broadcast(string) int               { return 0 }
func (h *listHost) RemotePresence(string, Presence)    {}

// TestGatherInParts: a node with more users and sessions than fit one
// bus reply answers in parts, and the asker gets all of them.
func TestGatherInParts(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	defer ns.Shutdown()
	big := &listHost{}
	for i := range 2*chunkItems + 7 {
		u := fmt.Sprintf("user%05d", i)
		big.users = append(big.users, u)
		big.sessions = append(big.sessions, Session{ID: uint64(i), User: u, Remote: "127.0.0.1:1"})
	}
	start := func(name string, h Host) *Node {
		cfg := config.Default().Cluster
		cfg.Enabled, cfg.Node, cfg.NATS.URLs = true, name, []string{ns.ClientURL()}
		n, err := Start(cfg, Options{Host: h})
		if err != nil {
			t.Fatal(err)
		}
		n.run(func(string, string, int64, string, []byte) {}, func(context.Context) {})
		return n
	}
	b := start("b", big)
	defer b.Close()
	// b's directory holds them all before a starts: a learns them from a
	// snapshot, which comes in parts.
	for _, u := range big.users {
		b.SetPresence(u, Presence{Connected: true, State: "online"})
	}
	a := start("a", &listHost{})
	defer a.Close()
	deadline := time.Now().Add(10 * time.Second)
	for len(a.Peers()) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("a never heard b")
		}
		time.Sleep(20 * time.Millisecond)
	}
	last := big.users[len(big.users)-1]
	for !a.Remote(big.users[0]).Connected || !a.Remote(last).Connected {
		if time.Now().After(deadline) {
			t.Fatal("a's directory never got b's users")
		}
		time.Sleep(20 * time.Millisecond)
	}
	ctx := context.Background()
	users, err := a.Users(ctx)
	if err != nil || len(users) != len(big.users) {
		t.Fatalf("users: %d, %v; want %d", len(users), err, len(big.users))
	}
	ss, err := a.Sessions(ctx)
	if err != nil || len(ss) != len(big.sessions) || ss[0].Node != "b" {
		t.Fatalf("sessions: %d, %v; want %d from b", len(ss), err, len(big.sessions))
	}
}
