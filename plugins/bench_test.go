package plugins_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qqchat/qq/plugins"
)

// Run with:
//
//	go test -run '^$' -bench 'FilterCall|StorageWrite' -benchtime 2s ./plugins/
//
// "direct" calls the Go implementation, "grpc" goes through the adapters
// over a gRPC connection inside the process, "process" through a real
// plugin subprocess (Unix socket, mutual TLS), "process-v2" through a
// plugin subprocess built for protocol version 2 (unary calls, no call
// stream).
//
// Besides wall time, every benchmark reports cpu-ns/op: the CPU time
// (user and system, all threads) that the test process and the plugin
// process spent per call, and plugin-cpu-ns/op, the plugin's share. Wall
// time hides work done on the other core; CPU time is what a loaded qqd
// pays. ctxsw/op counts the context switches of both processes per call
// (the plugin's: of its live threads).

var batchSizes = []int{1, 64}

// cpuMeter measures the CPU time of this process and of one child (the
// plugin process, pid 0 for none) across a benchmark loop.
type cpuMeter struct {
	child       int
	self, plugn time.Duration
	sw          int64
}

// startCPU takes the first reading.
func startCPU(b *testing.B, child int) *cpuMeter {
	m := &cpuMeter{child: child}
	var sw int64
	m.self, sw = selfCPU(b)
	m.plugn, m.sw = procCPU(b, child), sw+procSwitches(b, child)
	return m
}

// report takes the second reading and reports the CPU time per call.
func (m *cpuMeter) report(b *testing.B) {
	self, sw := selfCPU(b)
	self, plugn := self-m.self, procCPU(b, m.child)-m.plugn
	sw += procSwitches(b, m.child) - m.sw
	b.ReportMetric(float64((self+plugn).Nanoseconds())/float64(b.N), "cpu-ns/op")
	if m.child != 0 {
		b.ReportMetric(float64(plugn.Nanoseconds())/float64(b.N), "plugin-cpu-ns/op")
	}
	b.ReportMetric(float64(sw)/float64(b.N), "ctxsw/op")
}

// selfCPU is the user and system time of this process (every thread,
// live or exited), in microseconds' resolution, and its context switches.
func selfCPU(b *testing.B) (time.Duration, int64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), ru.Nvcsw + ru.Nivcsw
}

// procSwitches is the number of context switches of the live threads of
// a process (/proc/<pid>/task/*/status); 0 for pid 0.
func procSwitches(b *testing.B, pid int) int64 {
	if pid == 0 {
		return 0
	}
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	var n int64
	for _, path := range tasks {
		raw, err := os.ReadFile(path)
		if err != nil {
			continue // the thread exited
		}
		for _, line := range strings.Split(string(raw), "\n") {
			if name, v, ok := strings.Cut(line, ":"); ok && strings.HasSuffix(name, "ctxt_switches") {
				k, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				n += k
			}
		}
	}
	return n
}

// clockTick is the unit of utime and stime in /proc/<pid>/stat: USER_HZ,
// which is 100 on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// procCPU is the user and system time of a running process (every
// thread, live or exited) from /proc/<pid>/stat, to the clock tick
// (RUSAGE_CHILDREN counts only reaped children, so it cannot measure a
// plugin that still runs). Over a 2-second benchmark the tick's
// rounding is well under 1%.
func procCPU(b *testing.B, pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatalf("plugin cpu: %v", err)
	}
	s := string(raw)
	// The fields after the command name (which may hold spaces) start at
	// the state, field 3; utime and stime are fields 14 and 15.
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		b.Fatalf("plugin cpu: short /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("plugin cpu: /proc/%d/stat: utime %q, stime %q", pid, f[11], f[12])
	}
	return time.Duration(utime+stime) * clockTick
}

// startServed starts the test binary as a plugin of kind serving what
// serve names (see TestMain), and kills it when the benchmark ends.
func startServed(b *testing.B, serve string, kind plugins.Kind, config []byte, env plugins.Env) (*plugins.Process, error) {
	b.Setenv(envServe, serve)
	p, err := plugins.Start(context.Background(), plugins.Spec{
		Name: "bench", Kind: kind, Command: []string{os.Args[0]}, Config: config, Env: env,
		Logger: slog.New(slog.DiscardHandler),
	})
	if p != nil {
		b.Cleanup(p.Kill)
	}
	return p, err
}

func filterBatch(n int) []plugins.FilterMessage {
	msgs := make([]plugins.FilterMessage, n)
	for i := range msgs {
		msgs[i] = plugins.FilterMessage{From: "alice", To: "bob", Body: "hello bob, this is a message of ordinary length", TS: int64(i)}
	}
	return msgs
}

func BenchmarkFilterCall(b *testing.B) {
	impls := []struct {
		name string
		get  func(b *testing.B) (plugins.Filter, int)
	}{
		{"direct", func(*testing.B) (plugins.Filter, int) { return testFilter{}, 0 }},
		{"grpc", func(b *testing.B) (plugins.Filter, int) { return inProcessFilter(b, nil), 0 }},
		{"process", func(b *testing.B) (plugins.Filter, int) {
			p, err := startPlugin(b, "bench", plugins.KindFilter, nil, plugins.Env{}, nil)
			if err != nil {
				b.Fatal(err)
			}
			return p.Filter(), p.Pid()
		}},
		{"process-v2", func(b *testing.B) (plugins.Filter, int) {
			p, err := startServed(b, "filter-v2", plugins.KindFilter, nil, plugins.Env{})
			if err != nil {
				b.Fatal(err)
			}
			return p.Filter(), p.Pid()
		}},
	}
	for _, impl := range impls {
		for _, n := range batchSizes {
			b.Run(fmt.Sprintf("%s/batch=%d", impl.name, n), func(b *testing.B) {
				f, pid := impl.get(b)
				msgs := filterBatch(n)
				ctx := context.Background()
				b.ReportAllocs()
				cpu := startCPU(b, pid)
				for b.Loop() {
					if _, err := f.Filter(ctx, msgs); err != nil {
						b.Fatal(err)
					}
				}
				cpu.report(b)
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/msg")
			})
		}
	}
}

// BenchmarkStorageWrite writes batches to sqlitestore with synchronous
// "off", so that the figures show the call's cost rather than fsync's.
func BenchmarkStorageWrite(b *testing.B) {
	impls := []struct {
		name string
		get  func(b *testing.B) (plugins.Storage, int)
	}{
		{"direct", func(b *testing.B) (plugins.Storage, int) {
			env, cfg := sqliteConfig(b, "off")
			s, err := newTestStorage(env, cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = s.Close() })
			return s, 0
		}},
		{"grpc", func(b *testing.B) (plugins.Storage, int) {
			env, cfg := sqliteConfig(b, "off")
			return inProcessStorage(b, newTestStorage, env, cfg), 0
		}},
		{"process", func(b *testing.B) (plugins.Storage, int) {
			env, cfg := sqliteConfig(b, "off")
			p, err := startPlugin(b, "bench", plugins.KindStorage, cfg, env, nil)
			if err != nil {
				b.Fatal(err)
			}
			return p.Storage(), p.Pid()
		}},
		{"process-v2", func(b *testing.B) (plugins.Storage, int) {
			env, cfg := sqliteConfig(b, "off")
			p, err := startServed(b, "storage-v2", plugins.KindStorage, cfg, env)
			if err != nil {
				b.Fatal(err)
			}
			return p.Storage(), p.Pid()
		}},
	}
	for _, impl := range impls {
		for _, n := range batchSizes {
			b.Run(fmt.Sprintf("%s/batch=%d", impl.name, n), func(b *testing.B) {
				st, pid := impl.get(b)
				ctx := context.Background()
				for _, u := range []string{"alice", "bob"} {
					if err := st.CreateUser(ctx, u, "h"); err != nil {
						b.Fatal(err)
					}
				}
				batch := &plugins.WriteBatch{Messages: make([]plugins.NewMessage, n)}
				seq := 0
				b.ReportAllocs()
				cpu := startCPU(b, pid)
				for b.Loop() {
					for i := range batch.Messages {
						seq++
						batch.Messages[i] = msg("alice", "bob", "hello bob, this is a message of ordinary length", "c"+strconv.Itoa(seq))
					}
					if _, err := st.Write(ctx, batch); err != nil {
						b.Fatal(err)
					}
				}
				cpu.report(b)
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/msg")
			})
		}
	}
}
