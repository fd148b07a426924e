package plugins

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
)

func TestWatchParent(t *testing.T) {
	var ppid atomic.Int64
	ppid.Store(100)
	orphaned := make(chan struct{})
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		watchParent(stop, time.Millisecond, func() int { return int(ppid.Load()) }, func() { close(orphaned) })
	}()
	select {
	case <-orphaned:
		t.Fatal("orphaned while the parent lives")
	case <-time.After(20 * time.Millisecond):
	}
	ppid.Store(1)
	select {
	case <-orphaned:
	case <-time.After(time.Second):
		t.Fatal("not orphaned after the parent changed")
	}
	<-done

	// stop ends the watch.
	stop2 := make(chan struct{})
	done2 := make(chan struct{})
	go func() {
		defer close(done2)
		watchParent(stop2, time.Millisecond, func() int { return 7 }, func() { t.Error("orphaned") })
	}()
	close(stop2)
	<-done2
	close(stop)
}

func TestLineRelay(t *testing.T) {
	var buf bytes.Buffer
	r := newLineRelay(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		Level: levelTrace,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})).With("plugin", "p"))
	in := strings.Join([]string{
		`time=2026-01-02T03:04:05.000Z level=WARN msg="disk \"almost\" full" free=3% plugin=x`,
		`{"time":"2026-01-02T03:04:05Z","level":"ERROR","msg":"db gone","err":"eio","n":2}`,
		`{"@level":"debug","@message":"plugin address","@module":"go-plugin","@timestamp":"2026-01-02T03:04:05.000000Z","network":"unix"}`,
		`time=x level=DEBUG-4 msg=tracing`,
		`[WARN] old style`,
		`plain words = here`,
		``,
		`panic: boom`,
		`goroutine 1 [running]:`,
	}, "\n") + "\nno newline yet"
	// Write in odd pieces: lines are reassembled.
	for i := 0; i < len(in); i += 7 {
		_, _ = r.Write([]byte(in[i:min(i+7, len(in))]))
	}
	if strings.Contains(buf.String(), "no newline yet") {
		t.Error("partial line logged before Flush")
	}
	r.Flush()
	want := []string{
		`level=WARN msg="disk \"almost\" full" plugin=p free=3% plugin_attr=x`,
		`level=ERROR msg="db gone" plugin=p err=eio n=2`,
		`level=DEBUG msg="plugin address" plugin=p @module=go-plugin network=unix`,
		`level=DEBUG-4 msg=tracing plugin=p`,
		`level=WARN msg="[WARN] old style" plugin=p`,
		`level=INFO msg="plain words = here" plugin=p`,
		`level=ERROR msg="panic: boom" plugin=p`,
		`level=ERROR msg="goroutine 1 [running]:" plugin=p`,
		`level=ERROR msg="no newline yet" plugin=p`,
	}
	got := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(got), len(want), buf.String())
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d:\n got %s\nwant %s", i, got[i], want[i])
		}
	}

	// A line longer than the bound is cut, not buffered forever.
	buf.Reset()
	_, _ = r.Write(bytes.Repeat([]byte("x"), maxRelayLine+10))
	if n := strings.Count(buf.String(), "\n"); n != 1 {
		t.Errorf("long line: %d records before the newline, want 1", n)
	}
}

func TestHCLogAdapter(t *testing.T) {
	var buf bytes.Buffer
	a := newHCLogAdapter(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})), "qqd")
	a.Debug("hidden")
	a.Info("plugin process exited", "plugin", "/usr/bin/qqd", "id", 42)
	a.Named("stdio").With("k", 1).Warn("stream", "err", "eof")
	a.Named("qqd").Error("raw stderr line: relayed elsewhere")
	out := buf.String()
	for _, w := range []string{
		`level=INFO msg="plugin process exited" plugin_path=/usr/bin/qqd id=42`,
		`level=WARN msg=stream module=stdio k=1 err=eof`,
	} {
		if !strings.Contains(out, w) {
			t.Errorf("log lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "hidden") || strings.Contains(out, "relayed elsewhere") {
		t.Errorf("log has filtered lines:\n%s", out)
	}
	if a.GetLevel() != hclog.Info || a.Named("qqd").GetLevel() != hclog.Off || a.IsDebug() || !a.IsInfo() {
		t.Errorf("levels: %v %v", a.GetLevel(), a.Named("qqd").GetLevel())
	}
}

func TestChildEnv(t *testing.T) {
	got := childEnv([]string{"PATH=/bin", "NOTIFY_SOCKET=/run/x", "LISTEN_FDS=2", "LISTEN_PID=1", "LISTEN_FDNAMES=a", "WATCHDOG_PID=1", "WATCHDOG_USEC=5", "HOME=/root", "NOTIFY_SOCKETS=keep"})
	want := []string{"PATH=/bin", "HOME=/root", "NOTIFY_SOCKETS=keep"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("childEnv = %v, want %v", got, want)
	}
}

// TestContractErrorsCross: every contract error crosses the process
// boundary both as a call's status and as a Write result's error, and
// errors.Is still recognises it on the host, with the plugin's text.
func TestContractErrorsCross(t *testing.T) {
	for _, sentinel := range []error{
		ErrUserExists, ErrUnknownUser, ErrBadCursor, ErrBlocked, ErrNotFriends, ErrNoRequest,
		ErrNoGroup, ErrNotMember, ErrNotAllowed, ErrMuted, ErrGroupFull, ErrAlreadyMember, ErrGroupLimit,
		ErrNoToken, ErrTokenExists,
		context.Canceled, context.DeadlineExceeded,
	} {
		err := fmt.Errorf("mystore: group 7: %w", sentinel)
		got := fromStatus(toStatus(err))
		if !errors.Is(got, sentinel) || got.Error() != err.Error() {
			t.Errorf("%v across a call = %v, want %q and errors.Is", sentinel, got, err)
		}
		if bare := fromStatus(toStatus(sentinel)); bare != sentinel {
			t.Errorf("%v across a call = %#v, want the sentinel itself", sentinel, bare)
		}
	}
	for _, tt := range []struct {
		err, want error // want: the sentinel errors.Is finds on the host, if any
	}{
		{fmt.Errorf("x: %w", ErrUnknownUser), ErrUnknownUser},
		{ErrBlocked, ErrBlocked},
		{ErrNotFriends, ErrNotFriends},
		{ErrNoGroup, ErrNoGroup},
		{ErrNotMember, ErrNotMember},
		{ErrMuted, ErrMuted},
		{fmt.Errorf("y: %w", ErrNotAllowed), ErrNotAllowed},
		{errors.New("disk on fire"), nil},
	} {
		got := appendResultsFromPB(appendResultsToPB([]AppendResult{{Err: tt.err}}))[0].Err
		if got == nil || got.Error() != tt.err.Error() || tt.want != nil && !errors.Is(got, tt.want) ||
			tt.want == nil && errors.Is(got, ErrNotAllowed) {
			t.Errorf("result error %v crossed as %#v", tt.err, got)
		}
	}
	entry := AppendResult{Duplicate: true, Group: &GroupEntry{Group: 1, Seq: 2, Kind: EntryMsg, From: "a", Mentions: []string{"b", "all"}, MsgID: "m", CID: "c"}}
	got := appendResultsFromPB(appendResultsToPB([]AppendResult{entry}))[0]
	if got.Err != nil || !got.Duplicate || got.Group == nil || got.Group.Seq != 2 || got.Group.MsgID != "m" ||
		len(got.Group.Mentions) != 2 || got.Message != entry.Message {
		t.Errorf("result %+v crossed as %+v", entry, got)
	}
}
