package main

import (
	"bufio"
	"context"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/qqchat/qq/daemon/password"
	"github.com/qqchat/qq/daemon/token"
	"github.com/qqchat/qq/plugins"
)

// BenchmarkResumeAfterRestart: QQ_BENCH_CLIENTS (default 10,000) clients
// are logged in to a real qqd (real plugins, real SQLite: the sqlite
// storage, chosen in its configuration), qqd is killed
// with SIGKILL and started again on the same data and address, and every
// client reconnects as soon as it can (retrying every 20–100 ms, jittered)
// and logs in again: by its resume token (token) or by its password
// (password, one Argon2id verification each at the OWASP cost qqd ships
// with). Reported per restart: s_to_listen (from the kill until the new
// qqd listens), s_all_ready (from then until every client has its login
// answered and a ping after it), qqd_cpu_s (CPU of the new qqd and its
// plugins until then: user+system from /proc) and the clients' ready
// p50/p99. Run with -benchtime=1x; not part of the test suite:
//
//	go test -run '^$' -bench ResumeAfterRestart -benchtime 1x -timeout 30m ./daemon/qqd/
func BenchmarkResumeAfterRestart(b *testing.B) {
	n := 10000
	if v := os.Getenv("QQ_BENCH_CLIENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("QQ_BENCH_CLIENTS=%q: want a positive integer", v)
		}
	}
	for _, mode := range []string{"token", "password"} {
		b.Run(mode, func(b *testing.B) { benchResume(b, mode, n) })
	}
}

// resumeConfigYAML lets n clients from 127.0.0.1 in (loopback is exempt
// from the login limits by default; the connection limits are not), on
// the sqlite storage that the benchmark's figures were measured on.
const resumeConfigYAML = `
storage: {plugin: sqlite}
limits:
  max_connections: 19000
  max_connections_per_ip: 19000
`

func benchResume(b *testing.B, mode string, n int) {
	dir := b.TempDir()
	users, tokens := seedUsers(b, dir, "sqlite", n, true)
	cfgPath := filepath.Join(dir, "qq.yaml")
	if err := os.WriteFile(cfgPath, []byte(resumeConfigYAML), 0o600); err != nil {
		b.Fatal(err)
	}
	p := startQQD(b, dir, "-config", cfgPath)
	addr := p.addr
	var addrMu sync.Mutex
	cur := func() string { addrMu.Lock(); defer addrMu.Unlock(); return addr }

	// Everyone logs in by token first (cheap), so that the starting
	// point is n logged-in clients in both modes.
	clients := make([]*resumeClient, n)
	for i := range clients {
		clients[i] = &resumeClient{user: users[i], token: tokens[i], mode: mode}
	}
	if lat, err := loginAll(clients, cur, "token"); err != nil {
		b.Fatalf("first logins: %v", err)
	} else {
		b.Logf("%d clients logged in by token (p99 %v)", n, lat[len(lat)*99/100])
	}
	b.ResetTimer()
	for range b.N {
		kill := time.Now()
		if err := p.signal(b, syscall.SIGKILL); err == nil {
			b.Fatal("qqd exited cleanly after SIGKILL")
		}
		p = startQQD(b, dir, "-config", cfgPath, "-listen", addr)
		listening := time.Now()
		lat, err := loginAll(clients, cur, mode)
		ready := time.Since(listening)
		if err != nil {
			b.Fatalf("after the restart: %v", err)
		}
		cpu := procTreeCPU(b, p.cmd.Process.Pid)
		b.ReportMetric(listening.Sub(kill).Seconds(), "s_to_listen")
		b.ReportMetric(ready.Seconds(), "s_all_ready")
		b.ReportMetric(cpu.Seconds(), "qqd_cpu_s")
		b.ReportMetric(lat[len(lat)/2].Seconds(), "p50_s")
		b.ReportMetric(lat[len(lat)*99/100].Seconds(), "p99_s")
		b.Logf("%s: %d clients ready %v after qqd listened (%v after the kill); qqd+plugins CPU %v",
			mode, n, ready.Round(time.Millisecond), time.Since(kill).Round(time.Millisecond), cpu.Round(time.Millisecond))
	}
	b.StopTimer()
	for _, c := range clients {
		c.close()
	}
}

// seedUsers creates, in the store of the built-in storage plugin named
// storage in dataDir (qqd not running), n users u00000, u00001, ... with
// password "password1", all sharing one hash made at the shipped cost (a
// verification costs what it costs in production; one hash for all keeps
// the setup fast), and, withTokens, a resume token for each.
func seedUsers(tb testing.TB, dataDir, storage string, n int, withTokens bool) (users, tokens []string) {
	ctx := context.Background()
	st := openDataStore(tb, dataDir, storage, true)
	defer st.Close()
	hash, err := password.Hash(password.OWASP, "password1")
	if err != nil {
		tb.Fatal(err)
	}
	tk, ok := plugins.TokensOf(st)
	if !ok {
		tb.Fatalf("the %s storage keeps no tokens", storage)
	}
	now := time.Now().UnixMilli()
	for i := range n {
		u := fmt.Sprintf("u%05d", i)
		if err := st.CreateUser(ctx, u, hash); err != nil {
			tb.Fatal(err)
		}
		users = append(users, u)
		if !withTokens {
			continue
		}
		t := token.New()
		if err := tk.AddToken(ctx, plugins.Token{ID: t.ID, User: u, Hash: t.Hash(),
			Created: now, LastUsed: now, Expires: now + 24*time.Hour.Milliseconds()}, 20); err != nil {
			tb.Fatal(err)
		}
		tokens = append(tokens, t.String())
	}
	return users, tokens
}

// resumeClient is a bare QQP/1 client: as little client-side CPU as
// possible, so that the figure is qqd's.
type resumeClient struct {
	user, token, mode string
	conn              net.Conn
	r                 *bufio.Reader
}

func (c *resumeClient) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// reconnect dials until it gets a hello, then logs in (by how) and pings;
// it returns when the ping is answered.
func (c *resumeClient) reconnect(addr func() string, how string, deadline time.Time) error {
	c.close()
	for {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not logged in by the deadline", c.user)
		}
		conn, err := net.DialTimeout("tcp", addr(), 5*time.Second)
		if err != nil {
			time.Sleep(20*time.Millisecond + mrand.N(80*time.Millisecond))
			continue
		}
		conn.SetDeadline(deadline)
		c.conn, c.r = conn, bufio.NewReader(conn)
		if err := c.login(how); err != nil {
			c.close()
			if strings.Contains(err.Error(), "refused:") {
				return err
			}
			time.Sleep(20*time.Millisecond + mrand.N(80*time.Millisecond))
			continue
		}
		conn.SetDeadline(time.Time{})
		return nil
	}
}

func (c *resumeClient) login(how string) error {
	if _, err := c.r.ReadString('\n'); err != nil { // hello
		return err
	}
	req := fmt.Sprintf(`{"type":"resume","id":1,"token":%q}`+"\n"+`{"type":"ping","id":2}`+"\n", c.token)
	if how == "password" {
		req = fmt.Sprintf(`{"type":"login","id":1,"user":%q,"password":"password1"}`+"\n"+`{"type":"ping","id":2}`+"\n", c.user)
	}
	if _, err := c.conn.Write([]byte(req)); err != nil {
		return err
	}
	for _, want := range []string{`"type":"ok","id":1`, `"type":"ok","id":2`} {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return err
		}
		if !strings.Contains(line, want) {
			return fmt.Errorf("%s refused: %s", c.user, line)
		}
	}
	return nil
}

// loginAll (re)connects every client at once and returns each one's time
// to ready, sorted.
func loginAll(clients []*resumeClient, addr func() string, how string) ([]time.Duration, error) {
	start := time.Now()
	deadline := start.Add(20 * time.Minute)
	lat := make([]time.Duration, len(clients))
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() {
			if err := c.reconnect(addr, how, deadline); err != nil {
				firstErr.CompareAndSwap(nil, err)
			}
			lat[i] = time.Since(start)
		})
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return nil, err
	}
	slices.Sort(lat)
	return lat, nil
}

// procTreeCPU is the user+system CPU of pid and its children (the
// plugins, which are still running, so read one by one).
func procTreeCPU(b *testing.B, pid int) time.Duration {
	var total time.Duration
	pids := []int{pid}
	if kids, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid)); err == nil {
		for _, f := range strings.Fields(string(kids)) {
			if k, err := strconv.Atoi(f); err == nil {
				pids = append(pids, k)
			}
		}
	}
	for _, p := range pids {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			b.Logf("cpu of %d: %v", p, err)
			continue
		}
		// Fields after the command (which may hold spaces): state is 3,
		// utime 14, stime 15 (1-based over the whole line).
		s := string(stat)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		ut, _ := strconv.ParseInt(fields[11], 10, 64)
		st, _ := strconv.ParseInt(fields[12], 10, 64)
		total += time.Duration(ut+st) * time.Second / 100 // USER_HZ
	}
	return total
}
