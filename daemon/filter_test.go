package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/plugins"
)

// funcFilter is a filter made of a function, for tests of the chain's
// mechanics; the real filter plugins have their own tests.
type funcFilter struct {
	calls atomic.Int64
	fn    func(ctx context.Context, m plugins.FilterMessage) (plugins.Verdict, error)
}

func (f *funcFilter) Filter(ctx context.Context, msgs []plugins.FilterMessage) ([]plugins.Verdict, error) {
	f.calls.Add(1)
	vs := make([]plugins.Verdict, len(msgs))
	for i, m := range msgs {
		v, err := f.fn(ctx, m)
		if err != nil {
			return nil, err
		}
		vs[i] = v
	}
	return vs, nil
}

func replaceFilter(old, new string) *funcFilter {
	return &funcFilter{fn: func(_ context.Context, m plugins.FilterMessage) (plugins.Verdict, error) {
		if strings.Contains(m.Body, old) {
			return plugins.Verdict{Action: plugins.Rewrite, Body: strings.ReplaceAll(m.Body, old, new)}, nil
		}
		return plugins.Verdict{}, nil
	}}
}

func rejectFilter(word, reason string) *funcFilter {
	return &funcFilter{fn: func(_ context.Context, m plugins.FilterMessage) (plugins.Verdict, error) {
		if strings.Contains(m.Body, word) {
			return plugins.Verdict{Action: plugins.Reject, Reason: reason}, nil
		}
		return plugins.Verdict{}, nil
	}}
}

// startWithFilters runs a daemon on real SQLite with the given chain.
func startWithFilters(t *testing.T, filters []plugins.FilterLink, edit ...func(*config.Config)) *daemontest.Server {
	t.Helper()
	cfg := daemontest.Config(t, edit...)
	st := daemontest.OpenStore(t, cfg)
	return daemontest.StartWithPlugins(t, cfg, st, filters)
}

func TestFilterChain(t *testing.T) {
	s := startWithFilters(t, []plugins.FilterLink{
		{Name: "mask", Filter: replaceFilter("darn", "****")},
		{Name: "ban", Filter: rejectFilter("****", "no swearing, please\nsecond line dropped")},
		{Name: "shout", Filter: replaceFilter("hello", "HELLO")},
	})
	alice := s.User(t, "alice")
	bob := s.User(t, "bob")

	alice.Send(`{"type":"send","id":1,"to":"bob","body":"hello bob"}`)
	ok := alice.Expect(`{"type":"ok","id":1,"body":"HELLO bob"}`)
	bob.Expect(fmt.Sprintf(`{"type":"msg","msg_id":%q,"body":"HELLO bob"}`, ok.MsgID))

	// The first filter's rewrite is what the second sees.
	alice.Send(`{"type":"send","id":2,"to":"bob","body":"darn it"}`)
	alice.Expect(`{"type":"error","id":2,"code":"rejected","message":"no swearing, please"}`)

	// Unchanged bodies carry no body in the ok.
	alice.Send(`{"type":"send","id":3,"to":"bob","body":"plain"}`)
	if f := alice.Expect(`{"type":"ok","id":3}`); f.Body != "" {
		t.Fatalf("ok carries body %q for an unchanged message", f.Body)
	}
	bob.Expect(`{"type":"msg","body":"plain"}`)

	bob.Send(`{"type":"history","id":"h","with":"alice"}`)
	h := bob.Expect(`{"type":"ok","id":"h"}`)
	if got := bodies(h.Messages); got != "HELLO bob plain" {
		t.Fatalf("history = %q: a rejected message was stored or a rewrite lost", got)
	}
}

func TestFilterFailurePolicies(t *testing.T) {
	failing := &funcFilter{fn: func(context.Context, plugins.FilterMessage) (plugins.Verdict, error) {
		return plugins.Verdict{}, errors.New("filter broke")
	}}
	hanging := &funcFilter{fn: func(ctx context.Context, _ plugins.FilterMessage) (plugins.Verdict, error) {
		<-ctx.Done()
		return plugins.Verdict{}, ctx.Err()
	}}
	huge := &funcFilter{fn: func(context.Context, plugins.FilterMessage) (plugins.Verdict, error) {
		return plugins.Verdict{Action: plugins.Rewrite, Body: strings.Repeat("x", 1<<20)}, nil
	}}
	for _, tc := range []struct {
		name   string
		filter *funcFilter
		policy plugins.FailurePolicy
		want   string
	}{
		{"error fails closed", failing, plugins.FailClosed, `{"type":"error","id":1,"code":"unavailable"}`},
		{"error fails open", failing, plugins.FailOpen, `{"type":"ok","id":1}`},
		{"hang fails closed after the deadline", hanging, plugins.FailClosed, `{"type":"error","id":1,"code":"unavailable"}`},
		{"hang fails open after the deadline", hanging, plugins.FailOpen, `{"type":"ok","id":1}`},
		{"oversized rewrite fails closed", huge, plugins.FailClosed, `{"type":"error","id":1,"code":"unavailable"}`},
		{"oversized rewrite fails open", huge, plugins.FailOpen, `{"type":"ok","id":1}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startWithFilters(t, []plugins.FilterLink{{Name: "f", Filter: tc.filter, OnFailure: tc.policy, Timeout: 200 * time.Millisecond}})
			alice := s.User(t, "alice")
			bob := s.User(t, "bob")
			alice.Send(`{"type":"send","id":1,"to":"bob","body":"hi"}`)
			alice.Expect(tc.want)
			n, err := s.Store.PendingCount(t.Context(), "bob")
			wantN := int64(0)
			if tc.policy == plugins.FailOpen {
				wantN = 1
				bob.Expect(`{"type":"msg","body":"hi"}`)
			}
			if err != nil || n != wantN {
				t.Fatalf("bob has %d pending (%v), want %d", n, err, wantN)
			}
		})
	}
}

// A cid retry is answered from storage without passing the filters again:
// a filter that rejects repeats must not refuse the retry of an accepted
// message.
func TestCIDRetryNotRefiltered(t *testing.T) {
	seen := map[string]bool{}
	var mu sync.Mutex
	once := &funcFilter{fn: func(_ context.Context, m plugins.FilterMessage) (plugins.Verdict, error) {
		mu.Lock()
		defer mu.Unlock()
		if seen[m.Body] {
			return plugins.Verdict{Action: plugins.Reject, Reason: "repeat"}, nil
		}
		seen[m.Body] = true
		return plugins.Verdict{}, nil
	}}
	s := startWithFilters(t, []plugins.FilterLink{{Name: "once", Filter: once}})
	alice := s.User(t, "alice")
	s.User(t, "bob")
	alice.Send(`{"type":"send","id":1,"to":"bob","body":"same","cid":"k"}`)
	first := alice.Expect(`{"type":"ok","id":1}`)
	calls := once.calls.Load()
	alice.Send(`{"type":"send","id":2,"to":"bob","body":"same","cid":"k"}`)
	if again := alice.Expect(`{"type":"ok","id":2}`); again.MsgID != first.MsgID {
		t.Fatalf("retry got %s, want %s", again.MsgID, first.MsgID)
	}
	if once.calls.Load() != calls {
		t.Fatal("the retry went through the filter again")
	}
	alice.Send(`{"type":"send","id":3,"to":"bob","body":"same"}`)
	alice.Expect(`{"type":"error","id":3,"code":"rejected","message":"repeat"}`)
}

// TestSwapPlugins swaps the filter chain while clients send: no request
// fails, no connection drops, and the new chain applies to every send that
// starts after the swap.
func TestSwapPlugins(t *testing.T) {
	s := startWithFilters(t, []plugins.FilterLink{{Name: "a", Filter: replaceFilter("x", "A")}})
	alice := s.User(t, "alice")
	s.User(t, "bob")
	stop := make(chan struct{})
	errs := make(chan error, 1)
	var sent atomic.Int64
	go func() {
		defer close(errs)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			alice.Send(fmt.Sprintf(`{"type":"send","id":%d,"to":"bob","body":"x"}`, i))
			f := alice.Read()
			if f.Type != "ok" {
				errs <- fmt.Errorf("send %d: %+v", i, f)
				return
			}
			sent.Add(1)
		}
	}()
	for sent.Load() < 20 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, old, err := s.Daemon.SwapPlugins(ctx, nil, []plugins.FilterLink{{Name: "b", Filter: replaceFilter("x", "B")}})
	if err != nil || len(old) != 1 || old[0].Name != "a" {
		t.Fatalf("SwapPlugins = %v, %v", old, err)
	}
	after := sent.Load()
	for sent.Load() < after+20 {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	alice.Send(`{"type":"send","id":"last","to":"bob","body":"x"}`)
	alice.Expect(`{"type":"ok","id":"last","body":"B"}`)
}
