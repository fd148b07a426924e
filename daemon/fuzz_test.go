package daemon_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/daemon/protocol"
)

// fuzzUser is the account every FuzzSession input is logged in as.
const fuzzUser = "fuzzer"

// fuzzSeq numbers sessions, so that the closing ping's id cannot be
// guessed by the fuzzer (it would end the session early).
var fuzzSeq atomic.Int64

// knownCodes are the error codes documented in docs/protocol.md.
var knownCodes = map[string]bool{
	"bad_request": true, "unknown_type": true, "not_logged_in": true, "frame_too_large": true,
	"user_exists": true, "registration_closed": true, "auth_failed": true, "already_logged_in": true,
	"unknown_user": true, "too_large": true, "unavailable": true, "internal": true,
	"rejected": true, "rate_limited": true,
	"blocked": true, "not_friends": true, "no_request": true,
	"no_group": true, "not_member": true, "not_allowed": true, "muted": true, "group_full": true,
	"already_member": true, "group_limit": true,
}

var (
	snakeCase = regexp.MustCompile(`^[a-z]+(_[a-z]+)*$`)
	msgIDRe   = regexp.MustCompile(`^[0-9a-hjkmnp-tv-z]{26}$`)
)

// FuzzSession fuzzes the request dispatch through a real connection: each
// input is a whole session. A fresh connection logs in as fuzzUser, writes
// the input, then "\n" and a ping with an unguessable id, and reads every
// frame until the ok to that ping, or until the server closes the
// connection after frame_too_large, the ok to a logout or a kicked push.
// Every frame must be one JSON object of a known shape, every non-blank
// line must get exactly one reply, and a fresh connection must still get
// its ping answered afterwards.
//
// One server serves every input of a fuzz process. It is started once,
// before f.Fuzz: a server per input would make each execution cost a
// SQLite database and a listener, and the fuzz target itself cannot
// start it lazily, since t.Cleanup would stop it after the first input
// and *testing.F may not be used inside the target. Started with f, it
// lives exactly as long as the fuzz process needs it and f.Cleanup stops
// it, so goleak's check in TestMain still passes. The price: inputs share
// state (accounts registered and messages sent by earlier inputs), so a
// failure may depend on the inputs before it; every check below holds
// whatever that state is.
func FuzzSession(f *testing.F) {
	s := daemontest.Start(f, daemontest.Unlimited, func(c *config.Config) {
		c.Storage.Config["synchronous"] = "off" // speed; durability is not under test
	})
	reg := s.Dial(f)
	reg.Register(fuzzUser, "password1")
	reg.Register("peer", "password1")
	reg.C.Close()
	maxFrame := s.Config.Limits.MaxFrameBytes
	// Seeds too big to commit as files.
	f.Add([]byte(strings.Repeat("x", maxFrame+1)))
	f.Add([]byte(`{"type":"send","to":"fuzzer","body":"` + strings.Repeat("é", 8193) + `"}`))

	f.Fuzz(func(t *testing.T, data []byte) {
		end := fmt.Sprintf("end-%d", fuzzSeq.Add(1))
		nc, err := net.DialTimeout("tcp", s.Addr, daemontest.Timeout)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		deadline := time.Now().Add(20 * time.Second)
		nc.SetDeadline(deadline)
		fr := protocol.NewFrameReader(nc, 1<<26) // replies may exceed max_frame_bytes
		hello, err := fr.ReadFrame()
		if err != nil || daemontest.Match(string(hello), `{"type":"hello","server":"qqd","proto":1}`) != nil {
			t.Fatalf("hello: %q, %v", hello, err)
		}

		var in bytes.Buffer
		fmt.Fprintf(&in, `{"type":"login","id":"fuzz-login","user":%q,"password":"password1"}`+"\n", fuzzUser)
		in.Write(data)
		fmt.Fprintf(&in, "\n"+`{"type":"ping","id":%q}`+"\n", end)
		// Write while reading: a big input's replies must not fill the
		// buffers both ways.
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc.Write(in.Bytes())
		}()
		defer wg.Wait()
		defer nc.Close()

		wantReplies, tooLong := expectedReplies(data, maxFrame)
		replies := 0
		var last map[string]json.RawMessage
		for {
			line, err := fr.ReadFrame()
			if err != nil {
				closed := errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "connection reset")
				if !closed {
					t.Fatalf("after %d replies: %v", replies, err)
				}
				// Only frame_too_large, a logout's ok or a kick close a
				// connection.
				switch {
				case last == nil:
					t.Fatal("closed without a reply")
				case str(last["type"]) == "kicked":
				case str(last["type"]) == "error" && str(last["code"]) == "frame_too_large":
					if !tooLong {
						t.Fatal("frame_too_large without a line over max_frame_bytes")
					}
				case str(last["type"]) == "ok":
					// A logout's ok: it has no result fields.
					if len(last) != 2 {
						t.Fatalf("closed after an ok with results: %v", last)
					}
				default:
					t.Fatalf("closed after %v", last)
				}
				break
			}
			fields := checkFrame(t, line)
			last = fields
			typ := str(fields["type"])
			if typ != "ok" && typ != "error" {
				continue
			}
			replies++
			if replies == 1 {
				if daemontest.Match(string(line), `{"type":"ok","id":"fuzz-login","user":"fuzzer"}`) != nil {
					t.Fatalf("login: %s", line)
				}
			}
			if typ == "ok" && str(fields["id"]) == end {
				if tooLong {
					t.Fatal("a line over max_frame_bytes did not close the connection")
				}
				if replies != wantReplies {
					t.Fatalf("%d replies, want %d (one per non-blank line, login and end included)", replies, wantReplies)
				}
				break
			}
		}

		// The server still answers a fresh connection.
		c, err := net.DialTimeout("tcp", s.Addr, daemontest.Timeout)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(daemontest.Timeout))
		c.Write([]byte(`{"type":"ping","id":"alive"}` + "\n"))
		cfr := protocol.NewFrameReader(c, 1<<20)
		for _, want := range []string{`{"type":"hello"}`, `{"type":"ok","id":"alive"}`} {
			line, err := cfr.ReadFrame()
			if err != nil || daemontest.Match(string(line), want) != nil {
				t.Fatalf("fresh connection: %q, %v; want %s", line, err, want)
			}
		}
	})
}

// expectedReplies returns how many replies the session with data should
// get if it reaches the final ping (login, every non-blank line of data,
// the ping), and whether a line of data is longer than maxFrame (the
// connection then closes with frame_too_large).
func expectedReplies(data []byte, maxFrame int) (int, bool) {
	n := 2
	rest := append(append([]byte{}, data...), '\n')
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		line := bytes.TrimSuffix(rest[:i], []byte("\r"))
		rest = rest[i+1:]
		if len(line) > maxFrame {
			return n, true
		}
		// The contract ignores lines of white space; qqd counts Unicode
		// white space (docs/protocol.md, "Blank lines").
		if len(bytes.TrimSpace(line)) > 0 {
			n++
		}
	}
	return n, false
}

// checkFrame fails t unless line is one JSON object of a known shape, and
// returns its fields.
func checkFrame(t *testing.T, line []byte) map[string]json.RawMessage {
	t.Helper()
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(line, &fields); err != nil || fields == nil {
		t.Fatalf("frame %q is not one JSON object: %v", line, err)
	}
	typ, ok := strField(fields, "type")
	if !ok {
		t.Fatalf("frame %s: no string type", line)
	}
	switch typ {
	case "ok", "error":
		id, has := fields["id"]
		if !has {
			t.Fatalf("reply %s: no id", line)
		}
		if k := id[0]; k != '"' && k != 'n' && k != '-' && (k < '0' || k > '9') {
			t.Fatalf("reply %s: id is not a string, a number or null", line)
		}
		if typ == "ok" {
			return fields
		}
		code, _ := strField(fields, "code")
		if !snakeCase.MatchString(code) || !knownCodes[code] {
			t.Fatalf("error %s: code %q is not a documented code", line, code)
		}
		// With storage healthy and limits lifted, these are server faults.
		if code == "internal" || code == "unavailable" || code == "rate_limited" {
			t.Fatalf("error %s on a healthy server", line)
		}
		if msg, ok := strField(fields, "message"); !ok || msg == "" {
			t.Fatalf("error %s: no message", line)
		}
	case "msg":
		var m protocol.Message
		if err := json.Unmarshal(line, &m); err != nil || !msgIDRe.MatchString(m.ID) || m.TS <= 0 ||
			!protocol.ValidUser(m.From) || !protocol.ValidUser(m.To) || m.Body == "" {
			t.Fatalf("msg push %s: bad shape (%v)", line, err)
		}
	case "kicked":
		r, ok1 := strField(fields, "reason")
		_, ok2 := strField(fields, "message")
		if !ok1 || !ok2 || !snakeCase.MatchString(r) {
			t.Fatalf("kicked push %s: bad shape", line)
		}
	case "notice":
		if _, ok := strField(fields, "message"); !ok {
			t.Fatalf("notice push %s: bad shape", line)
		}
	case "friend_request", "typing":
		from, ok1 := strField(fields, "from")
		if !ok1 || !protocol.ValidUser(from) {
			t.Fatalf("%s push %s: bad shape", typ, line)
		}
	case "group_entry", "group_join_request":
		g, ok1 := strField(fields, "group")
		if !ok1 || g == "" {
			t.Fatalf("%s push %s: bad shape", typ, line)
		}
	case "friend_added", "friend_removed", "friend_declined", "friend_cancelled", "presence":
		user, ok1 := strField(fields, "user")
		if !ok1 || !protocol.ValidUser(user) {
			t.Fatalf("%s push %s: bad shape", typ, line)
		}
	default:
		t.Fatalf("frame %s: unknown type %q", line, typ)
	}
	return fields
}

func strField(fields map[string]json.RawMessage, name string) (string, bool) {
	var s string
	raw, ok := fields[name]
	if !ok || len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

func str(raw json.RawMessage) string {
	var s string
	json.Unmarshal(raw, &s)
	return s
}
