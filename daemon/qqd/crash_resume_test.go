package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qqchat/qq/client"
	"github.com/qqchat/qq/daemon/protocol"
)

// Bounds of the restart test.
const (
	restartClients  = 200
	restartSendGap  = 150 * time.Millisecond // mean pause between one client's sends
	restartUptime   = 1500 * time.Millisecond
	restartSettle   = 90 * time.Second // everything flushed and delivered at the end
	restartLoginMax = 60 * time.Second // the first logins (one Argon2id each)
)

// restartUser is one client-library Session of the restart test.
type restartUser struct {
	name string
	s    *client.Session

	mu       sync.Mutex
	issued   map[string]client.Outgoing // by cid
	results  map[string]client.SendDone // by cid
	received map[string]int             // msg_id -> deliveries
	got      map[string]protocol.Message
	ups      []client.Event
}

// TestRestartWithSessions: 200 client-library Sessions chat with
// auto-reconnect while qqd is killed with SIGKILL and restarted three
// times, then stopped with SIGTERM and restarted once. At the end:
// every send the application issued is stored exactly once (the storage
// is read directly), every stored message reached its recipient's
// application exactly once, no send was refused, and after the first
// login no client logged in with its password again (every reconnection
// was a resume by token).
func TestRestartWithSessions(t *testing.T) {
	if testing.Short() {
		t.Skip("the restart test takes about a minute")
	}
	dir := t.TempDir()
	conf := writeConfig(t, dir, strings.Replace(crashConfigYAML, "limits:\n",
		"reconnect_spread: 2s\nlimits:\n", 1))
	seedUsers(t, dir, defaultStorage, restartClients, false)
	p := startQQD(t, dir, "-config", conf)
	addr := p.addr

	users := make([]*restartUser, restartClients)
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), restartLoginMax)
	defer cancel()
	errs := make(chan error, restartClients)
	for i := range users {
		u := &restartUser{name: fmt.Sprintf("u%05d", i), issued: map[string]client.Outgoing{},
			results: map[string]client.SendDone{}, received: map[string]int{}, got: map[string]protocol.Message{}}
		users[i] = u
		wg.Go(func() {
			s, err := client.Connect(ctx, addr, client.SessionOptions{
				User: u.name, Password: "password1", Remember: true,
				MinBackoff: 20 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
				OutboxSize: 10000,
			})
			if err != nil {
				errs <- fmt.Errorf("%s: connect: %w", u.name, err)
				return
			}
			u.s = s
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, u := range users {
			u.s.Close()
		}
	})
	var readers sync.WaitGroup
	for _, u := range users {
		readers.Go(func() { u.read(t) })
	}

	// The load: every client sends to random others until stop.
	stop := make(chan struct{})
	var senders sync.WaitGroup
	for i, u := range users {
		senders.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				case <-time.After(time.Duration(rng.Int64N(int64(2 * restartSendGap)))):
				}
				to := users[rng.IntN(len(users))].name
				body := fmt.Sprintf("%s #%d to %s", u.name, n, to)
				u.mu.Lock() // before Enqueue: its result may come at once
				cid, err := u.s.Enqueue(to, body, fmt.Sprintf("%s-%d", u.name, n))
				if err == nil {
					u.issued[cid] = client.Outgoing{CID: cid, To: to, Body: body}
				}
				u.mu.Unlock()
				if err != nil {
					t.Errorf("%s: enqueue: %v", u.name, err)
					return
				}
			}
		})
	}

	// Three kills and one graceful stop, each followed by a restart on
	// the same data and address.
	for i, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGKILL, syscall.SIGKILL, syscall.SIGTERM} {
		time.Sleep(restartUptime)
		err := p.signal(t, sig)
		if sig == syscall.SIGKILL && err == nil || sig == syscall.SIGTERM && err != nil {
			t.Fatalf("restart %d: qqd after %v: %v", i+1, sig, err)
		}
		p = startQQD(t, dir, "-config", conf, "-listen", addr)
		t.Logf("restart %d (%v) done", i+1, sig)
	}
	time.Sleep(restartUptime)
	close(stop)
	senders.Wait()

	// Every outbox drains, then every message is delivered.
	fctx, fcancel := context.WithTimeout(context.Background(), restartSettle)
	defer fcancel()
	for _, u := range users {
		if err := u.s.Flush(fctx); err != nil {
			t.Fatalf("%s: flush: %v (unsent: %d)", u.name, err, len(u.s.Unsent()))
		}
	}
	// Results travel on the events queue: wait for all of them.
	for _, u := range users {
		for {
			u.mu.Lock()
			done := len(u.results) >= len(u.issued)
			u.mu.Unlock()
			if done {
				break
			}
			if fctx.Err() != nil {
				t.Fatalf("%s: send results missing after Flush", u.name)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	want := map[string]map[string]bool{} // recipient -> msg_ids
	issued := 0
	for _, u := range users {
		u.mu.Lock()
		issued += len(u.issued)
		for cid, o := range u.issued {
			r, ok := u.results[cid]
			switch {
			case !ok:
				t.Errorf("%s: send %s has no result", u.name, cid)
			case r.Err != nil:
				t.Errorf("%s: send %s refused: %v", u.name, cid, r.Err)
			default:
				if want[o.To] == nil {
					want[o.To] = map[string]bool{}
				}
				want[o.To][r.Result.MsgID] = true
			}
		}
		u.mu.Unlock()
	}
	if t.Failed() {
		t.FailNow()
	}
	for _, u := range users {
		for {
			u.mu.Lock()
			missing := 0
			for id := range want[u.name] {
				if u.received[id] == 0 {
					missing++
				}
			}
			u.mu.Unlock()
			if missing == 0 {
				break
			}
			if fctx.Err() != nil {
				t.Fatalf("%s: %d acknowledged messages never delivered", u.name, missing)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for _, u := range users {
		u.s.Close()
	}
	readers.Wait()

	// Delivered exactly once, and nothing delivered that was not sent.
	delivered := 0
	for _, u := range users {
		for id, n := range u.received {
			if n != 1 {
				t.Errorf("%s got %s %d times", u.name, id, n)
			}
			if !want[u.name][id] {
				t.Errorf("%s got %s, which no send was acknowledged with: %+v", u.name, id, u.got[id])
			}
			delivered++
		}
	}
	// Stored exactly once: read the store itself (qqd stopped first).
	if err := p.signal(t, syscall.SIGTERM); err != nil {
		t.Fatalf("final stop: %v", err)
	}
	stored := storedBodies(t, dir, users)
	for _, u := range users {
		for cid, o := range u.issued {
			switch n := stored[o.Body]; {
			case n != 1:
				t.Errorf("%s: send %s (%q) stored %d times", u.name, cid, o.Body, n)
			}
			delete(stored, o.Body)
		}
	}
	for body, n := range stored {
		t.Errorf("stored %d times but never issued: %q", n, body)
	}
	// No password after the first login.
	resumes := 0
	for _, u := range users {
		u.mu.Lock()
		for i, up := range u.ups {
			if i > 0 && !up.Resumed {
				t.Errorf("%s: reconnection %d logged in by password", u.name, i)
			}
			if up.Resumed {
				resumes++
			}
		}
		u.mu.Unlock()
	}
	t.Logf("%d clients, 4 restarts: %d sends issued and stored once each, %d deliveries, %d resumes by token",
		restartClients, issued, delivered, resumes)
	if resumes < 4*restartClients {
		t.Errorf("%d resumes, want at least one per client per restart (%d)", resumes, 4*restartClients)
	}
}

// read records u's deliveries, events and send results until the
// session ends, acking every message it records.
func (u *restartUser) read(t *testing.T) {
	msgs, events := u.s.Messages(), u.s.Events()
	for msgs != nil || events != nil {
		select {
		case m, ok := <-msgs:
			if !ok {
				msgs = nil
				continue
			}
			u.mu.Lock()
			u.received[m.ID]++
			u.got[m.ID] = m
			u.mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := u.s.Ack(ctx, m.ID); err != nil && u.s.Err() == nil {
				t.Logf("%s: ack: %v (kept by the session for the next login)", u.name, err)
			}
			cancel()
		case e, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			u.mu.Lock()
			switch e.Type {
			case client.EventUp:
				u.ups = append(u.ups, e)
			case client.EventSendDone:
				u.results[e.Send.CID] = *e.Send
			}
			u.mu.Unlock()
		}
	}
}

// storedBodies counts, per body, the messages stored from users to
// users, read from the store of the default storage plugin in dataDir
// (qqd stopped).
func storedBodies(t *testing.T, dataDir string, users []*restartUser) map[string]int {
	ctx := context.Background()
	st := openDataStore(t, dataDir, defaultStorage, false)
	defer st.Close()
	pairs := map[[2]string]bool{}
	for _, u := range users {
		for _, o := range u.issued {
			a, b := u.name, o.To
			if b < a {
				a, b = b, a
			}
			pairs[[2]string{a, b}] = true
		}
	}
	count := map[string]int{}
	for pair := range pairs {
		before := ""
		for {
			ms, more, err := st.History(ctx, pair[0], pair[1], before, 500)
			if err != nil {
				t.Fatalf("history %v: %v", pair, err)
			}
			for _, m := range ms {
				count[m.Body]++
			}
			if !more || len(ms) == 0 {
				break
			}
			before = ms[0].ID
		}
	}
	return count
}
