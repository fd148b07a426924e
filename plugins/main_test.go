package plugins_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/sqlite/sqlitestore"
)

// The test binary doubles as a plugin and as a plugin host:
//
//	QQ_PLUGIN_TEST_SERVE=filter|storage   serve the test filter or storage
//	QQ_PLUGIN_TEST_SERVE=storage-v1       serve the test storage as a plugin
//	                                      built for protocol version 1 only
//	QQ_PLUGIN_TEST_SERVE=storage-v2|filter-v2
//	                                      serve the test storage or filter as
//	                                      a plugin built for versions 1 and 2
//	                                      (before call streams)
//	QQ_PLUGIN_TEST_SERVE=storage-v3       serve the test storage as a plugin
//	                                      built for versions 1 to 3 (before
//	                                      Backup)
//	QQ_PLUGIN_TEST_SERVE=storage-v4       serve the test storage as a plugin
//	                                      built for versions 1 to 4 (before
//	                                      Stats)
//	QQ_PLUGIN_TEST_SERVE=quiet|reservednames
//	                                      serve the filter or storage of the
//	                                      package examples
//	QQ_PLUGIN_TEST_PARENT=start           Start a filter plugin, print its pid, block
//	QQ_PLUGIN_TEST_PARENT=raw             run the filter plugin without Start
//	                                      (no Pdeathsig: only its watchdog guards it)
const (
	envServe  = "QQ_PLUGIN_TEST_SERVE"
	envParent = "QQ_PLUGIN_TEST_PARENT"
)

func TestMain(m *testing.M) {
	switch os.Getenv(envServe) {
	case "filter":
		plugins.ServeFilter(newTestFilter)
		return
	case "storage":
		plugins.ServeStorage(newTestStorage)
		return
	case "storage-v1":
		plugins.ServeStorageVersions(newTestStorage, 1)
		return
	case "storage-v2":
		plugins.ServeStorageVersions(newTestStorage, 1, 2)
		return
	case "storage-v3":
		plugins.ServeStorageVersions(newTestStorage, 1, 2, 3)
		return
	case "storage-v4":
		plugins.ServeStorageVersions(newTestStorage, 1, 2, 3, 4)
		return
	case "filter-v2":
		plugins.ServeFilterVersions(newTestFilter, 1, 2)
		return
	case "quiet":
		plugins.ServeFilter(newQuiet)
		return
	case "reservednames":
		plugins.ServeStorage(newReservedNames)
		return
	}
	if mode := os.Getenv(envParent); mode != "" {
		os.Exit(middle(mode))
	}
	// Children built with -race would sleep 1s on exit to report races.
	os.Setenv("GORACE", "atexit_sleep_ms=0")
	code := daemontest.RunWithPrivateTmp(m)
	if kids := childPids(); len(kids) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: child processes left running: %v\n", kids)
		code = 1
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "FAIL: goroutines leaked: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// middle is the parent process of the orphan tests: it starts a filter
// plugin, prints its pid and waits to be killed.
func middle(mode string) int {
	var pid int
	switch mode {
	case "start":
		os.Setenv(envServe, "filter")
		p, err := plugins.Start(context.Background(), plugins.Spec{
			Name: "orphan", Kind: plugins.KindFilter, Command: []string{os.Args[0]},
			Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		pid = p.Pid()
	case "raw":
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), envServe+"=filter",
			plugins.Handshake.MagicCookieKey+"="+plugins.Handshake.MagicCookieValue,
			"PLUGIN_PROTOCOL_VERSIONS="+strconv.Itoa(plugins.ProtocolVersion))
		out, err := cmd.StdoutPipe()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		// Wait for the handshake line: the plugin is serving.
		if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		pid = cmd.Process.Pid
	default:
		return 2
	}
	fmt.Println(pid)
	select {}
}

// childPids lists the live (not zombie) children of this process.
func childPids() []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var kids []int
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		state, ppid, ok := procStat(pid)
		if ok && ppid == self && state != "Z" {
			kids = append(kids, pid)
		}
	}
	return kids
}

// procStat reads a process's state and parent from /proc.
func procStat(pid int) (state string, ppid int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return "", 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	return f[0], ppid, true
}

// ---- the test filter ----------------------------------------------------

type testFilterConfig struct {
	// Fail makes the factory fail with this text.
	Fail string `json:"fail"`
	// Log is logged at warn with slog to os.Stderr (through go-plugin's
	// stdio stream) and printed raw to the original stderr with log.
	Log string `json:"log"`
}

// testFilter rewrites bodies to upper case, rejects those containing
// "bad", panics on "panic", waits for ctx on "slow", and allows bodies
// already in upper case. On "wait <dir>" it creates <dir>/started, waits
// for ctx, then creates <dir>/ended holding ctx's error.
//
// Bodies that name files are for tests that run the filter in a plugin
// process and must know what it is doing.
type testFilter struct{}

func newTestFilter(_ plugins.Env, config []byte) (plugins.Filter, error) {
	var c testFilterConfig
	if err := json.Unmarshal(config, &c); err != nil {
		return nil, fmt.Errorf("testfilter: config: %w", err)
	}
	if c.Fail != "" {
		return nil, errors.New(c.Fail)
	}
	if c.Log != "" {
		slog.New(slog.NewTextHandler(os.Stderr, nil)).Warn(c.Log, "source", "slog")
		log.Print("raw " + c.Log) // the log package writes to the original fd 2
	}
	return testFilter{}, nil
}

func (testFilter) Filter(ctx context.Context, msgs []plugins.FilterMessage) ([]plugins.Verdict, error) {
	vs := make([]plugins.Verdict, len(msgs))
	for i, m := range msgs {
		switch {
		case strings.Contains(m.Body, "bad"):
			vs[i] = plugins.Verdict{Action: plugins.Reject, Reason: "bad word from " + m.From}
		case m.Body == "panic":
			panic("test filter panics")
		case m.Body == "where":
			vs[i] = plugins.Verdict{Action: plugins.Rewrite, Body: fmt.Sprintf("to %q in group %d", m.To, m.Group)}
		case m.Body == "slow":
			<-ctx.Done()
			return nil, ctx.Err()
		case strings.HasPrefix(m.Body, "wait "):
			dir := strings.TrimPrefix(m.Body, "wait ")
			if err := os.WriteFile(filepath.Join(dir, "started"), nil, 0o600); err != nil {
				return nil, err
			}
			<-ctx.Done()
			_ = os.WriteFile(filepath.Join(dir, "ended"), []byte(ctx.Err().Error()), 0o600)
			return nil, ctx.Err()
		case m.Body == "error":
			return nil, errors.New("testfilter: refusing the batch")
		case strings.ToUpper(m.Body) != m.Body:
			vs[i] = plugins.Verdict{Action: plugins.Rewrite, Body: strings.ToUpper(m.Body)}
		default:
			vs[i] = plugins.Verdict{Action: plugins.Allow}
		}
	}
	return vs, nil
}

// ---- the test storage ---------------------------------------------------

// newTestStorage is sqlitestore with faults: see faultStorage.
func newTestStorage(env plugins.Env, config []byte) (plugins.Storage, error) {
	s, err := sqlitestore.New(env, config)
	if err != nil {
		return nil, err
	}
	return faultStorage{s}, nil
}

// faultStorage fails a Write whose first message's body is "fail maybe"
// (MaybeWritten true) or "fail nothing" (false), returns a non-WriteError
// on "fail plain", and blocks on "hang" until well after ctx is done. On
// "hang <dir>" it creates <dir>/started and fails (nothing written) when
// ctx is done. It keeps the Social, the Groups, the Tokens and the Backup
// of the storage it wraps, and has Stats (testPoolStats).
type faultStorage struct{ plugins.Storage }

func (s faultStorage) Social() (plugins.Social, bool) { return plugins.SocialOf(s.Storage) }

func (s faultStorage) Groups() (plugins.Groups, bool) { return plugins.GroupsOf(s.Storage) }

func (s faultStorage) Tokens() (plugins.Tokens, bool) { return plugins.TokensOf(s.Storage) }

func (s faultStorage) BackupSide() (plugins.Backup, bool) { return plugins.BackupOf(s.Storage) }

// testPoolStats is what faultStorage's Stats reports: every field set,
// each to a different value.
func testPoolStats() plugins.PoolStats {
	return plugins.PoolStats{
		MaxConns: 8, IdleConns: 2, AcquiredConns: 3, ConstructingConns: 1,
		Acquires: 100, EmptyAcquires: 7, CanceledAcquires: 4, AcquireWait: 1500 * time.Millisecond,
	}
}

// Stats implements plugins.Stats.
func (s faultStorage) Stats(ctx context.Context) (plugins.StorageStats, error) {
	if err := ctx.Err(); err != nil {
		return plugins.StorageStats{}, err
	}
	p := testPoolStats()
	return plugins.StorageStats{Pool: &p}, nil
}

func (s faultStorage) Write(ctx context.Context, b *plugins.WriteBatch) ([]plugins.AppendResult, error) {
	if len(b.Messages) > 0 {
		switch b.Messages[0].Body {
		case "fail maybe":
			return nil, &plugins.WriteError{MaybeWritten: true, Err: errors.New("faultstorage: commit outcome unknown")}
		case "fail nothing":
			return nil, &plugins.WriteError{MaybeWritten: false, Err: fmt.Errorf("faultstorage: rolled back: %w", context.DeadlineExceeded)}
		case "fail plain":
			return nil, errors.New("faultstorage: not a WriteError")
		case "hang":
			<-ctx.Done()
			time.Sleep(200 * time.Millisecond) // answer after the caller gave up
			return nil, &plugins.WriteError{MaybeWritten: false, Err: ctx.Err()}
		}
		if dir, ok := strings.CutPrefix(b.Messages[0].Body, "hang "); ok {
			if err := os.WriteFile(filepath.Join(dir, "started"), nil, 0o600); err != nil {
				return nil, &plugins.WriteError{MaybeWritten: false, Err: err}
			}
			<-ctx.Done()
			return nil, &plugins.WriteError{MaybeWritten: false, Err: ctx.Err()}
		}
	}
	return s.Storage.Write(ctx, b)
}

// sqliteConfig is the test storage's configuration in a fresh directory.
func sqliteConfig(t testing.TB, synchronous string) (plugins.Env, []byte) {
	return plugins.Env{DataDir: t.TempDir()}, []byte(`{"path":"qq.db","synchronous":"` + synchronous + `"}`)
}

// eventually polls cond for up to d.
func eventually(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); ; time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
	}
}

func msg(from, to, body, cid string) plugins.NewMessage {
	return plugins.NewMessage{From: from, To: to, Body: body, CID: cid, Status: protocol.StatusQueued}
}
