package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/qqchat/qq/client"
	"github.com/qqchat/qq/daemon/protocol"
)

// TestCrashFriendRequests kills qqd, or its storage plugin, with SIGKILL
// while users send each other friend requests and accept the ones they
// receive, retrying every request and accept that got no answer. Then it
// checks the promise: an ok to a friend_request means the request is
// stored (the target lists it, or they are friends), an ok to an accept
// means a friendship, and every pair whose requests both got an ok ended
// up friends.
func TestCrashFriendRequests(t *testing.T) {
	for _, mode := range []string{"qqd", "storage"} {
		t.Run("kill="+mode, func(t *testing.T) { crashFriends(t, mode) })
	}
}

func crashFriends(t *testing.T, mode string) {
	const users, rounds, kills = 8, 3, 3
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	dir := t.TempDir()
	conf := writeConfig(t, dir, strings.Replace(crashConfigYAML, "limits:\n", "limits:\n  friend_requests_per_day: 100000\n", 1))
	p := startQQD(t, dir, "-config", conf)
	var addr atomic.Pointer[string]
	addr.Store(&p.addr)

	names := make([]string, users)
	for i := range names {
		names[i] = fmt.Sprintf("f%d", i)
		dialClient(t, p.addr, names[i]).Close()
	}

	// What got an ok: requested[a][b], accepted[a][b] (a accepted b's).
	var mu sync.Mutex
	requested := map[[2]string]bool{}
	accepted := map[[2]string]bool{}
	var oks atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup

	retry := func(c **client.Client, user string, op func(context.Context, *client.Client) error) error {
		return crashRetry(stop, &addr, c, user, op)
	}

	for i, me := range names {
		wg.Go(func() {
			var c *client.Client
			defer func() {
				if c != nil {
					c.Close()
				}
			}()
			r := rand.New(rand.NewPCG(seed, uint64(i+2)))
			var targets []string
			for range rounds {
				round := slices.Clone(names)
				r.Shuffle(len(round), func(a, b int) { round[a], round[b] = round[b], round[a] })
				targets = append(targets, round...)
			}
			for _, to := range targets {
				if to == me {
					continue
				}
				if err := retry(&c, me, func(ctx context.Context, c *client.Client) error {
					_, err := c.RequestFriend(ctx, to, "crash test")
					return err
				}); err != nil {
					if err.Error() != "stopped" {
						t.Errorf("%s asks %s: %v", me, to, err)
					}
					return
				}
				mu.Lock()
				requested[[2]string{me, to}] = true
				mu.Unlock()
				oks.Add(1)
				// Accept what came in meanwhile.
				var fl *client.FriendList
				if retry(&c, me, func(ctx context.Context, c *client.Client) (err error) { fl, err = c.Friends(ctx); return err }) != nil {
					return
				}
				for _, in := range fl.Incoming {
					err := retry(&c, me, func(ctx context.Context, c *client.Client) error { return c.AcceptFriend(ctx, in.From) })
					switch {
					case err == nil:
						mu.Lock()
						accepted[[2]string{me, in.From}] = true
						mu.Unlock()
						oks.Add(1)
					case errors.Is(err, &protocol.Error{Code: protocol.CodeNoRequest}):
						// A retried accept whose first try committed.
					default:
						return
					}
				}
			}
		})
	}

	killed := crashKills(t, kills, rng, &oks, 2, 4, 300*time.Millisecond, &wg, stop, "users", func() {
		switch mode {
		case "qqd":
			p.signal(t, syscall.SIGKILL)
			p = startQQD(t, dir, "-config", conf)
			addr.Store(&p.addr)
		case "storage":
			p.killPlugin(t, defaultStorage)
		}
	})

	// Every user's view, on a fresh connection.
	friends := map[[2]string]bool{}
	incoming := map[[2]string]bool{} // [target, from]
	for _, u := range names {
		c := dialClient(t, p.addr, u)
		ctx, cancel := context.WithTimeout(context.Background(), crashCallTimeout)
		fl, err := c.Friends(ctx)
		cancel()
		if err != nil {
			t.Fatalf("%s: friends: %v", u, err)
		}
		for _, f := range fl.Friends {
			friends[[2]string{u, f.User}] = true
		}
		for _, r := range fl.Incoming {
			incoming[[2]string{u, r.From}] = true
		}
		c.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	for pair := range requested {
		a, b := pair[0], pair[1]
		if !incoming[[2]string{b, a}] && !friends[[2]string{a, b}] {
			t.Errorf("LOST: %s's request to %s got an ok, but %s neither lists it nor is a friend", a, b, b)
		}
		if requested[[2]string{b, a}] && !friends[[2]string{a, b}] {
			t.Errorf("%s and %s both asked (both got an ok) and are not friends", a, b)
		}
	}
	for pair := range accepted {
		if !friends[pair] || !friends[[2]string{pair[1], pair[0]}] {
			t.Errorf("LOST: %s accepted %s (ok), but they are not friends on both sides", pair[0], pair[1])
		}
	}
	for pair := range friends {
		if !friends[[2]string{pair[1], pair[0]}] {
			t.Errorf("one-sided friendship %v", pair)
		}
		if !requested[pair] && !requested[[2]string{pair[1], pair[0]}] {
			t.Errorf("friendship %v that nobody asked for", pair)
		}
	}
	t.Logf("kill=%s: %d kills; %d requests and %d accepts acknowledged, %d friendships", mode, killed, len(requested), len(accepted), len(friends)/2)
	if killed < 2 {
		t.Errorf("only %d kills: the load ended too soon to test anything", killed)
	}
}

// crashRetry runs op on user's client *c, dialling the address addr
// holds (it changes when qqd restarts) and logging in when *c is nil,
// until op gets an answer that is not unavailable or a broken connection,
// or stop is closed.
func crashRetry(stop <-chan struct{}, addr *atomic.Pointer[string], c **client.Client, user string, op func(context.Context, *client.Client) error) error {
	for {
		select {
		case <-stop:
			return errors.New("stopped")
		default:
		}
		if *c == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			cl, err := client.Dial(ctx, *addr.Load(), client.Options{})
			if err == nil {
				if _, err = cl.Login(ctx, user, user+"-password"); err != nil {
					cl.Close()
				}
			}
			cancel()
			if err != nil {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			*c = cl
		}
		ctx, cancel := context.WithTimeout(context.Background(), crashCallTimeout)
		err := op(ctx, *c)
		cancel()
		var pe *protocol.Error
		if err == nil || errors.As(err, &pe) && pe.Code != protocol.CodeUnavailable {
			return err
		}
		(*c).Close()
		*c = nil
		time.Sleep(20 * time.Millisecond)
	}
}

// killPlugin kills p's plugin process name with SIGKILL and waits until
// the supervisor runs it again as another process.
func (p *qqdProc) killPlugin(t *testing.T, name string) {
	t.Helper()
	pid := pluginPIDs(t, p.cmd.Process.Pid)[name]
	if pid == 0 {
		t.Fatalf("no %s plugin process", name)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill %s (pid %d): %v", name, pid, err)
	}
	for by := time.Now().Add(crashRestartWait); ; time.Sleep(10 * time.Millisecond) {
		if now := pluginPIDs(t, p.cmd.Process.Pid)[name]; now != 0 && now != pid {
			return
		}
		if time.Now().After(by) {
			t.Fatalf("plugin %s did not come back within %v", name, crashRestartWait)
		}
	}
}

// crashKills runs the kills of a crash test while wg's load runs: kills
// times, once the load's oks counter has passed a mark step to
// step+jitter-1 higher than before and after a random pause of up to
// pause, it calls kill. It stops early when the load is through, and
// fails the test when the load makes no progress within crashProgress or
// does not finish within crashFinishWait (then it closes stop, which
// ends the load, named who in the message). It returns how many kills it
// made.
func crashKills(t *testing.T, kills int, rng *rand.Rand, oks *atomic.Int64, step, jitter int, pause time.Duration, wg *sync.WaitGroup, stop chan struct{}, who string, kill func()) int {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	killed := 0
killing:
	for k := range kills {
		want := oks.Load() + int64(step+rng.IntN(jitter))
		for by := time.Now().Add(crashProgress); oks.Load() < want; {
			select {
			case <-done:
				break killing // the load is through
			default:
			}
			if time.Now().After(by) {
				t.Fatalf("no progress within %v after kill %d", crashProgress, k)
			}
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(pause))))
		kill()
		killed++
	}
	select {
	case <-done:
	case <-time.After(crashFinishWait):
		close(stop)
		<-done
		t.Fatalf("%s did not finish within %v", who, crashFinishWait)
	}
	return killed
}
