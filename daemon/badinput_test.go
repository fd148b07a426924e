package daemon_test

// Bad input, one kind per test. Each test checks the documented error
// (docs/protocol.md) and then that another client still gets a message
// through (stillServing). Cases daemon_test.go already
// covers are not repeated: every request type before login (TestErrors),
// a frame of max+1 bytes in one burst and in 8 KB chunks
// (TestFrameTooLarge), an ASCII body of exactly max_body_bytes and one
// over (TestLoggedInErrors), send to self, to an unknown name and to a
// 40-byte name (TestLoggedInErrors, TestMultiSession), a client that
// never reads (TestSlowReaderDoesNotDelayOthers, and TestFaultStalledReader
// in faults_test.go).

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/daemon/protocol"
)

// expectEach sends each request on c and expects its reply.
func expectEach(t *testing.T, c *daemontest.Conn, cases [][2]string) {
	t.Helper()
	for _, tc := range cases {
		c.Send(tc[0])
		c.Expect(tc[1])
	}
}

// noneStored fails unless user has nothing pending.
func noneStored(t *testing.T, s *daemontest.Server, user string) {
	t.Helper()
	if n, err := s.Store.PendingCount(t.Context(), user); err != nil || n != 0 {
		t.Fatalf("%s has %d pending (%v), want 0", user, n, err)
	}
}

// TestBadInputFrameBoundary: the frame limit counted exactly, without
// waiting for the line to end, and for a line that arrives one byte at a
// time.
func TestBadInputFrameBoundary(t *testing.T) {
	s := daemontest.Start(t, daemontest.Unlimited, func(c *config.Config) {
		c.Limits.MaxFrameBytes = 5120
		c.Limits.MaxBodyBytes = 4096
	})
	max := s.Config.Limits.MaxFrameBytes
	s.User(t, "drip").C.Close()
	ping := func(id string) string { // a ping of exactly max bytes
		f := `{"type":"ping","id":"` + id + `"}`
		return f + strings.Repeat(" ", max-len(f))
	}

	t.Run("max bytes wait for their newline", func(t *testing.T) {
		c := s.Dial(t)
		c.SendRaw([]byte(ping("a")))
		c.ExpectSilence(200 * time.Millisecond)
		c.SendRaw([]byte("\n"))
		c.Expect(`{"type":"ok","id":"a"}`)
	})
	t.Run("max bytes and CR wait for the LF", func(t *testing.T) {
		c := s.Dial(t)
		c.SendRaw([]byte(ping("b") + "\r"))
		c.ExpectSilence(200 * time.Millisecond)
		c.SendRaw([]byte("\n"))
		c.Expect(`{"type":"ok","id":"b"}`)
	})
	t.Run("max bytes, CR and another byte", func(t *testing.T) {
		c := s.Dial(t)
		c.SendRaw([]byte(ping("c") + "\r"))
		c.ExpectSilence(100 * time.Millisecond)
		c.SendRaw([]byte("x"))
		c.Expect(`{"type":"error","id":null,"code":"frame_too_large"}`)
		c.ExpectClosed()
	})
	t.Run("max+1 bytes, then the error before the line ends", func(t *testing.T) {
		c := s.Dial(t)
		c.SendRaw([]byte(ping("d")))
		c.ExpectSilence(100 * time.Millisecond)
		c.SendRaw([]byte(" "))
		c.Expect(`{"type":"error","id":null,"code":"frame_too_large"}`)
		c.ExpectClosed()
	})
	t.Run("slow drip in pieces of 1 to 8 bytes", func(t *testing.T) {
		c, fc := s.DialFault(t, 5)
		c.Login("drip", "password1") // a logged-in client is treated alike
		fc.SetShortWrites(8, 100*time.Microsecond)
		c.SendRaw([]byte(`{"type":"ping","id":"e"}` + strings.Repeat(" ", max+1-24)))
		c.Expect(`{"type":"error","id":null,"code":"frame_too_large"}`)
		c.ExpectClosed()
	})
	stillServing(t, s)
}

// TestBadInputInvalidUTF8: invalid UTF-8 anywhere in a frame, even inside
// a string or a field the server does not know, is a bad_request with id
// null, whatever the frame says, and changes nothing.
func TestBadInputInvalidUTF8(t *testing.T) {
	s := daemontest.Start(t, daemontest.Unlimited)
	alice := s.User(t, "alice")
	bob := s.User(t, "bob")
	bad := []string{
		"\xff",                 // never valid
		"\xc0\xaf",             // overlong '/'
		"\xe0\x80\xaf",         // overlong, 3 bytes
		"\xed\xa0\x80",         // UTF-16 surrogate encoded as UTF-8
		"\xf4\x90\x80\x80",     // beyond U+10FFFF
		"\xe4\xb8",             // truncated sequence
		"\x80",                 // lone continuation byte
		"\xf8\x88\x80\x80\x80", // 5-byte form
	}
	for i, b := range bad {
		for _, frame := range []string{
			`{"type":"send","id":1,"to":"bob","body":"x` + b + `y"}`,
			`{"type":"send","id":1,"to":"bob` + b + `","body":"x"}`,
			`{"type":"send","id":1,"to":"bob","body":"x","cid":"` + b + `"}`,
			`{"type":"send","id":1,"to":"bob","body":"x","extra":"` + b + `"}`,
			`{"type":"send","id":1,"to":"bob","body":"x","` + b + `":1}`,
			`{"type":"ping` + b + `","id":1}`,
		} {
			alice.Send(frame)
			if line := alice.ReadLine(); daemontest.Match(line, `{"type":"error","id":null,"code":"bad_request"}`) != nil {
				t.Fatalf("bad byte sequence %d in %q: got %s", i, frame, line)
			}
		}
	}
	c := s.Dial(t)
	c.Send("{\"type\":\"register\",\"id\":1,\"user\":\"carol\xff\",\"password\":\"password1\"}")
	c.Expect(`{"type":"error","id":null,"code":"bad_request"}`)
	c.Send("{\"type\":\"register\",\"id\":2,\"user\":\"carol\",\"password\":\"password1\xc0\"}")
	c.Expect(`{"type":"error","id":null,"code":"bad_request"}`)
	c.Register("carol", "password1") // the name was not taken
	bob.ExpectSilence(100 * time.Millisecond)
	noneStored(t, s, "bob")

	// A lone surrogate written as a JSON escape is valid UTF-8 on the
	// wire; Go decodes it to U+FFFD. Either a bad_request or U+FFFD
	// delivered consistently is acceptable.
	alice.Send(`{"type":"send","id":"sur","to":"bob","body":"a\ud800b"}`)
	f := alice.Read()
	switch {
	case f.Type == protocol.TypeError && f.Code == protocol.CodeBadRequest:
		t.Log("a lone surrogate escape is a bad_request")
	case f.Type == protocol.TypeOK:
		push := bob.Expect(`{"type":"msg"}`)
		if push.Body != "a\ufffdb" || (f.Body != "" && f.Body != push.Body) {
			t.Fatalf("lone surrogate: ok %+v, push body %q", f, push.Body)
		}
		t.Log("a lone surrogate escape is delivered as U+FFFD")
	default:
		t.Fatalf("lone surrogate: %+v", f)
	}
	stillServing(t, s)
}

// TestBadInputNames: NUL, control characters, case, spaces and lengths in
// user names. register checks the rules (bad_request, even when the name
// without the bad part exists); login answers auth_failed; send and
// history answer unknown_user for anything not registered.
func TestBadInputNames(t *testing.T) {
	s := daemontest.Start(t, daemontest.Unlimited)
	alice := s.User(t, "alice")
	long := "abcdefghijklmnopqrstuvwxyz012345" // 32 bytes: the longest name
	s.User(t, long).C.Close()
	names := []string{
		"a\u0000b", "alice\u0000", "\u0000alice", "\u0000", "alice\u0001", "alice\u001f",
		"alice\u007f", "alice\n", "alice\r", "alice\t", " alice", "alice ", "Alice", "ALICE",
		"\u0430lice", // Cyrillic a
		"alice\u200b", "alice\ufeff", "al\\ice", "", long + "6", long + "\u0000",
		strings.Repeat("a", 1000),
	}
	anon := s.Dial(t)
	for _, n := range names {
		j := jsonString(n)
		expectEach(t, anon, [][2]string{
			{`{"type":"register","id":"r","user":` + j + `,"password":"password1"}`, `{"type":"error","id":"r","code":"bad_request"}`},
			{`{"type":"login","id":"l","user":` + j + `,"password":"password1"}`, `{"type":"error","id":"l","code":"auth_failed"}`},
		})
		expectEach(t, alice, [][2]string{
			{`{"type":"send","id":"s","to":` + j + `,"body":"x"}`, `{"type":"error","id":"s","code":"unknown_user"}`},
			{`{"type":"history","id":"h","with":` + j + `}`, `{"type":"error","id":"h","code":"unknown_user"}`},
		})
	}
	// Raw control characters inside a JSON string are not JSON.
	for _, raw := range []string{"\x00", "\x01", "\t", "\x1f"} {
		anon.Send(`{"type":"register","id":"raw","user":"a` + raw + `b","password":"password1"}`)
		anon.Expect(`{"type":"error","id":null,"code":"bad_request"}`)
		anon.Send(`{"type":"ping","id":"raw"}` + raw)
		if raw == "\t" { // white space after the object is allowed
			anon.Expect(`{"type":"ok","id":"raw"}`)
		} else {
			anon.Expect(`{"type":"error","id":null,"code":"bad_request"}`)
		}
	}
	// The 32-byte name is a name like any other.
	alice.Send(`{"type":"send","id":"ok","to":"` + long + `","body":"x"}`)
	alice.Expect(`{"type":"ok","id":"ok","status":"queued"}`)
	stillServing(t, s)
}

// TestBadInputPasswords: passwords are bytes of UTF-8, NUL and control
// characters included, with their bounds counted in bytes; a password is
// compared whole (not cut at a NUL).
func TestBadInputPasswords(t *testing.T) {
	s := daemontest.Start(t, daemontest.Unlimited)
	c := s.Dial(t)
	for i, tc := range []struct {
		pw string // raw JSON string contents
		ok bool
	}{
		{`pass\u0000word`, true},
		{strings.Repeat(`\u0000`, 8), true},
		{`\u0001\n\t\r\u001f\u007f\u2028x`, true},
		{"éééé", true},                               // 8 bytes, 4 characters
		{"ééé", false},                               // 6 bytes: under min_password_bytes
		{strings.Repeat("中", 341) + "a", true},       // 1024 bytes
		{strings.Repeat("中", 341) + "é", false},      // 1025 bytes
		{strings.Repeat(`\u00e9`, 512), true},        // 1024 bytes, escaped
		{strings.Repeat(`\u00e9`, 512) + "a", false}, // 1025 bytes, escaped
	} {
		user := fmt.Sprintf("pw%d", i)
		c.Send(fmt.Sprintf(`{"type":"register","id":%d,"user":%q,"password":"%s"}`, i, user, tc.pw))
		if !tc.ok {
			c.Expect(fmt.Sprintf(`{"type":"error","id":%d,"code":"bad_request"}`, i))
			continue
		}
		c.Expect(fmt.Sprintf(`{"type":"ok","id":%d}`, i))
		var pw string
		if err := json.Unmarshal([]byte(`"`+tc.pw+`"`), &pw); err != nil {
			t.Fatal(err)
		}
		l := s.Dial(t)
		// Cut at the first NUL, or one byte short: wrong.
		wrongs := []string{pw[:len(pw)-1], pw + "\x00"}
		if cut, _, found := strings.Cut(pw, "\x00"); found {
			wrongs = append(wrongs, cut)
		}
		for _, wrong := range wrongs {
			l.Send(fmt.Sprintf(`{"type":"login","id":"w","user":%q,"password":%s}`, user, jsonString(wrong)))
			l.Expect(`{"type":"error","id":"w","code":"auth_failed"}`)
		}
		// (Conn.Login quotes with %q, which is not JSON for control bytes.)
		l.Send(fmt.Sprintf(`{"type":"login","id":"r","user":%q,"password":%s}`, user, jsonString(pw)))
		l.Expect(`{"type":"ok","id":"r","user":"` + user + `"}`)
		l.C.Close()
	}
	stillServing(t, s)
}

// TestBadInputBodyBytes: bodies with NUL, every C0 control, DEL, C1
// controls, line and paragraph separators, BOM, noncharacters and escaped
// quotes are valid JSON strings and come back byte-for-byte in the push,
// offline and history; the ok carries no body (nothing was rewritten).
func TestBadInputBodyBytes(t *testing.T) {
	s := daemontest.Start(t, daemontest.Unlimited)
	alice := s.User(t, "alice")
	bob := s.User(t, "bob")
	var c0 strings.Builder
	for r := rune(0); r < 0x20; r++ {
		c0.WriteRune(r)
	}
	bodies := []string{
		"\u0000",
		"a\u0000b\u0000",
		c0.String(),
		"\u007f\u0080\u0085\u009f",
		"\u2028\u2029",
		"\ufeffBOM",
		"\ufffe\uffff\U0010ffff",
		`"\/\\"`,
		" ",
		"\n",
		"\r\n",
		"<script>&amp;</script>",
		"\U0001F600\u0301\u200d",
	}
	var ids []string
	for i, b := range bodies {
		alice.Send(fmt.Sprintf(`{"type":"send","id":%d,"to":"bob","body":%s}`, i, jsonString(b)))
		ok := alice.Expect(fmt.Sprintf(`{"type":"ok","id":%d,"status":"sent"}`, i))
		if ok.Body != "" {
			t.Errorf("body %q: ok carries body %q; nothing rewrote it", b, ok.Body)
		}
		line := bob.ReadLine()
		for j := 0; j < len(line); j++ {
			if line[j] < 0x20 {
				t.Fatalf("push of %q holds a raw control byte: %q", b, line)
			}
		}
		var push protocol.ServerFrame
		if err := json.Unmarshal([]byte(line), &push); err != nil || push.Body != b || push.MsgID != ok.MsgID {
			t.Fatalf("push %s (%v): want body %q", line, err, b)
		}
		ids = append(ids, ok.MsgID)
	}
	// Escaped differently, the same text is the same body.
	alice.Send(`{"type":"send","id":"esc","to":"bob","body":"\u00e9\u4e2d\ud83d\ude00\u0041"}`)
	alice.Expect(`{"type":"ok","id":"esc"}`)
	if got := bob.Expect(`{"type":"msg"}`).Body; got != "é中😀A" {
		t.Fatalf("escaped body = %q", got)
	}
	bob.Send(`{"type":"history","id":"h","with":"alice"}`)
	h := bob.Expect(`{"type":"ok","id":"h"}`).Messages
	bob.Send(`{"type":"offline","id":"o"}`)
	o := bob.Expect(`{"type":"ok","id":"o"}`).Messages
	for i, b := range bodies {
		if h[i].Body != b || h[i].ID != ids[i] || o[i].Body != b || o[i].ID != ids[i] {
			t.Fatalf("message %d: history %q, offline %q, want %q", i, h[i].Body, o[i].Body, b)
		}
	}
	stillServing(t, s)
}

// TestBadInputBodyBoundary: max_body_bytes counts bytes of UTF-8 after
// JSON unescaping, with multi-byte characters right at the boundary.
func TestBadInputBodyBoundary(t *testing.T) {
	s := daemontest.Start(t, daemontest.Unlimited, func(c *config.Config) { c.Limits.MaxBodyBytes = 4096 })
	alice := s.User(t, "alice")
	bob := s.User(t, "bob")
	a := func(n int) string { return strings.Repeat("a", n) }
	for _, tc := range []struct {
		name string
		body string // raw JSON string contents
		want int    // decoded bytes
	}{
		{"2-byte char ends at max", a(4094) + "é", 4096},
		{"2-byte char crosses max", a(4095) + "é", 4097},
		{"3-byte chars up to max", strings.Repeat("中", 1365) + "a", 4096},
		{"3-byte char crosses max", a(4094) + "中", 4097},
		{"4-byte char ends at max", a(4092) + "😀", 4096},
		{"4-byte char crosses max", a(4093) + "😀", 4097},
		{"escaped 2-byte chars up to max", strings.Repeat(`\u00e9`, 2048), 4096},
		{"escaped NULs up to max", strings.Repeat(`\u0000`, 4096), 4096},
		{"escaped NULs one over", strings.Repeat(`\u0000`, 4097), 4097},
		{"escaped surrogate pair crosses max", a(4093) + `\ud83d\ude00`, 4097},
		{"escaped surrogate pair ends at max", a(4092) + `\ud83d\ude00`, 4096},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want string
			if err := json.Unmarshal([]byte(`"`+tc.body+`"`), &want); err != nil || len(want) != tc.want {
				t.Fatalf("test case: %d bytes (%v), want %d", len(want), err, tc.want)
			}
			alice.Send(`{"type":"send","id":"b","to":"bob","body":"` + tc.body + `"}`)
			if tc.want > 4096 {
				alice.Expect(`{"type":"error","id":"b","code":"too_large"}`)
				return
			}
			alice.Expect(`{"type":"ok","id":"b","status":"sent"}`)
			if got := bob.Expect(`{"type":"msg"}`).Body; got != want {
				t.Fatalf("delivered %d bytes, want %d", len(got), len(want))
			}
		})
	}
	bob.ExpectSilence(50 * time.Millisecond) // nothing too large was delivered
	stillServing(t, s)
}

// TestBadInputDeepNesting: 10,000 levels of nesting (Go's encoding/json
// stops at 10,000) in an ignored field, in id, type and the typed fields:
// bad_request or handled, never a crash, and the connection stays usable.
// Shallow nesting in an ignored field is ignored.
func TestBadInputDeepNesting(t *testing.T) {
	s := daemontest.Start(t, daemontest.Unlimited)
	alice := s.User(t, "alice")
	s.User(t, "bob")
	arr := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	obj := func(n int) string { return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) }
	for _, tc := range []struct {
		name, frame string
		ok          bool // must succeed
	}{
		{"100 levels ignored", `{"type":"ping","id":"n","x":` + arr(100) + `}`, true},
		{"9,998 levels ignored", `{"type":"ping","id":"n","x":` + arr(9998) + `}`, false},
		{"10,000 arrays", `{"type":"ping","id":"n","x":` + arr(10000) + `}`, false},
		{"10,000 objects", `{"type":"ping","id":"n","x":` + obj(10000) + `}`, false},
		{"30,000 unclosed", `{"type":"ping","id":"n","x":` + strings.Repeat("[", 30000), false},
		{"nested id", `{"type":"ping","id":` + arr(10000) + `}`, false},
		{"nested type", `{"type":` + arr(10000) + `,"id":"n"}`, false},
		{"nested to", `{"type":"send","id":"n","to":` + arr(10000) + `,"body":"x"}`, false},
		{"nested msg_ids", `{"type":"ack","id":"n","msg_ids":` + arr(10000) + `}`, false},
		{"nested limit", `{"type":"offline","id":"n","limit":` + arr(10000) + `}`, false},
		{"10,000 levels as the frame", arr(10000), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			alice.Send(tc.frame)
			line := alice.ReadLine()
			okErr := daemontest.Match(line, `{"type":"ok","id":"n"}`)
			badN := daemontest.Match(line, `{"type":"error","id":"n","code":"bad_request"}`)
			badNull := daemontest.Match(line, `{"type":"error","id":null,"code":"bad_request"}`)
			switch {
			case tc.ok && okErr != nil:
				t.Fatal(okErr)
			case okErr != nil && badN != nil && badNull != nil:
				t.Fatalf("got %s, want ok or bad_request", line)
			}
			t.Logf("%.80s", line)
			alice.Send(`{"type":"ping","id":"after"}`)
			alice.Expect(`{"type":"ok","id":"after"}`)
		})
	}
	noneStored(t, s, "bob")
	stillServing(t, s)
}

// TestBadInputNumbers: ids are echoed as the number token sent, even ones
// no float64 holds; limits beyond any cap are clamped, negative ones and
// fractions are bad_request.
func TestBadInputNumbers(t *testing.T) {
	s := daemontest.Start(t, daemontest.Unlimited)
	alice := s.User(t, "alice")
	s.User(t, "bob")
	for _, id := range []string{
		"1e309", "-1e309", "1e400", "1E+400", "123456789012345678901234567890123456789",
		"0.000000000000000000000000000000000000000000001", "-0", "0e0", "9007199254740993",
		"1" + strings.Repeat("0", 400),
	} {
		alice.Send(`{"type":"ping","id":` + id + `}`)
		line := alice.ReadLine()
		if !json.Valid([]byte(line)) || !strings.Contains(line, `"id":`+id+`}`) && !strings.Contains(line, `"id":`+id+`,`) {
			t.Errorf("ping id %s: reply %s", id, line)
		}
	}
	for _, tc := range [][2]string{
		{`{"type":"offline","id":1,"limit":1e400}`, `{"type":"ok","id":1,"more":false}`},
		{`{"type":"offline","id":2,"limit":-1e400}`, `{"type":"error","id":2,"code":"bad_request"}`},
		{`{"type":"offline","id":3,"limit":1e-400}`, `{"type":"error","id":3,"code":"bad_request"}`},
		{`{"type":"offline","id":4,"limit":9223372036854775808}`, `{"type":"ok","id":4}`},
		{`{"type":"offline","id":5,"limit":-9223372036854775809}`, `{"type":"error","id":5,"code":"bad_request"}`},
		{`{"type":"offline","id":6,"limit":100e-2}`, `{"type":"ok","id":6}`},
		{`{"type":"offline","id":7,"limit":-0}`, `{"type":"error","id":7,"code":"bad_request"}`},
		{`{"type":"history","id":8,"with":"bob","limit":1e400}`, `{"type":"ok","id":8,"more":false}`},
		{`{"type":"history","id":9,"with":"bob","limit":1e19}`, `{"type":"ok","id":9}`},
		{`{"type":"history","id":10,"with":"bob","limit":9223372036854775807}`, `{"type":"ok","id":10}`},
		{`{"type":"history","id":11,"with":"bob","limit":-1}`, `{"type":"error","id":11,"code":"bad_request"}`},
		{`{"type":"history","id":12,"with":"bob","limit":-1e400}`, `{"type":"error","id":12,"code":"bad_request"}`},
		{`{"type":"history","id":13,"with":"bob","limit":-9223372036854775808}`, `{"type":"error","id":13,"code":"bad_request"}`},
		{`{"type":"history","id":14,"with":"bob","limit":0.5}`, `{"type":"error","id":14,"code":"bad_request"}`},
		{`{"type":"history","id":15,"with":"bob","limit":1.0}`, `{"type":"ok","id":15}`},
	} {
		alice.Send(tc[0])
		alice.Expect(tc[1])
	}
	stillServing(t, s)
}

// TestBadInputFractionalLimitRoundsToInteger: a limit that is a fraction
// in the request but rounds to an integer as a float64 must still be a
// bad_request ("fractions are bad_request").
func TestBadInputFractionalLimitRoundsToInteger(t *testing.T) {
	s := daemontest.Start(t, daemontest.Unlimited)
	alice := s.User(t, "alice")
	alice.Send(`{"type":"offline","id":1,"limit":0.99999999999999999999}`)
	alice.Expect(`{"type":"error","id":1,"code":"bad_request"}`)
	alice.Send(`{"type":"history","id":2,"with":"alice","limit":2.0000000000000001}`)
	alice.Expect(`{"type":"error","id":2,"code":"bad_request"}`)
}

// TestBadInputDuplicateKeys: the last of duplicate keys wins, for type, id
// and every field; keys are case-sensitive.
func TestBadInputDuplicateKeys(t *testing.T) {
	s := daemontest.Start(t, daemontest.Unlimited)
	anon := s.Dial(t)
	expectEach(t, anon, [][2]string{
		{`{"type":"ping","type":"send","id":1}`, `{"type":"error","id":1,"code":"not_logged_in"}`},
		{`{"type":"send","type":"ping","id":2}`, `{"type":"ok","id":2}`},
		{`{"id":1,"type":"ping","id":"two"}`, `{"type":"ok","id":"two"}`},
		{`{"id":"x","type":"ping","id":true}`, `{"type":"error","id":null,"code":"bad_request"}`},
		{`{"id":true,"type":"ping","id":"y"}`, `{"type":"ok","id":"y"}`},
		{`{"id":"z","type":"ping","id":null}`, `{"type":"ok","id":null}`},
		{`{"Type":"send","type":"ping","id":3}`, `{"type":"ok","id":3}`},
		{`{"type":"ping","TYPE":"send","id":4}`, `{"type":"ok","id":4}`},
		{`{"type":"ping","type":5,"id":5}`, `{"type":"error","id":5,"code":"bad_request"}`},
		{`{"type":"fly","type":"ping","id":6}`, `{"type":"ok","id":6}`},
	})
	alice := s.User(t, "alice")
	bob := s.User(t, "bob")
	expectEach(t, alice, [][2]string{
		{`{"type":"send","id":1,"to":"nobody","to":"bob","body":"first","body":"second"}`, `{"type":"ok","id":1,"status":"sent"}`},
		{`{"type":"send","id":2,"to":"bob","body":"x","body":5}`, `{"type":"error","id":2,"code":"bad_request"}`},
		{`{"type":"send","id":3,"to":"bob","to":"nobody","body":"x"}`, `{"type":"error","id":3,"code":"unknown_user"}`},
		{`{"type":"send","id":4,"to":"bob","body":5,"body":"third"}`, `{"type":"ok","id":4}`},
		{`{"type":"send","id":5,"to":"bob","body":"x","cid":"","cid":null}`, `{"type":"ok","id":5}`},
		{`{"type":"history","id":6,"with":"nobody","with":"bob","limit":0,"limit":2}`, `{"type":"ok","id":6}`},
	})
	bob.Expect(`{"type":"msg","from":"alice","body":"second"}`)
	bob.Expect(`{"type":"msg","body":"third"}`)
	bob.Expect(`{"type":"msg","body":"x"}`)
	bob.ExpectSilence(50 * time.Millisecond)
	stillServing(t, s)
}

// TestBadInputWrongTypes: every field of every request with every wrong
// JSON type is a bad_request echoing the id, and changes nothing; null in
// a required field is a bad_request, in an optional one it is absent.
func TestBadInputWrongTypes(t *testing.T) {
	s := daemontest.Start(t, daemontest.Unlimited)
	alice := s.User(t, "alice")
	bob := s.User(t, "bob")
	alice.Send(`{"type":"send","id":"m","to":"bob","body":"cursor"}`)
	cursor := alice.Expect(`{"type":"ok","id":"m"}`).MsgID
	bob.Expect(`{"type":"msg","body":"cursor"}`)
	anon := s.Dial(t)

	str := []string{`5`, `-1.5`, `true`, `false`, `{}`, `{"a":"b"}`, `[]`, `["x"]`}
	intv := []string{`"5"`, `""`, `true`, `{}`, `[]`, `[5]`, `1.5`, `{"n":5}`}
	ids := []string{`"x"`, `5`, `true`, `{}`, `[5]`, `[null]`, `[true]`, `[["x"]]`, `[{}]`, `{"0":"x"}`, `[1.5]`}
	type field struct {
		name     string
		wrong    []string
		required bool
	}
	for _, rt := range []struct {
		typ    string
		anon   bool // sent logged out (register and login)
		base   map[string]string
		fields []field
	}{
		{"register", true, map[string]string{"user": `"wt-reg"`, "password": `"password1"`},
			[]field{{"user", str, true}, {"password", str, true}}},
		{"login", true, map[string]string{"user": `"alice"`, "password": `"password1"`},
			[]field{{"user", str, true}, {"password", str, true}}},
		{"send", false, map[string]string{"to": `"bob"`, "body": `"x"`, "cid": `"c"`},
			[]field{{"to", str, true}, {"body", str, true}, {"cid", str, false}}},
		{"ack", false, map[string]string{"msg_ids": `[]`},
			[]field{{"msg_ids", ids, true}}},
		{"offline", false, map[string]string{"limit": `5`},
			[]field{{"limit", intv, false}}},
		{"history", false, map[string]string{"with": `"bob"`, "before": fmt.Sprintf("%q", cursor), "limit": `5`},
			[]field{{"with", str, true}, {"before", str, false}, {"limit", intv, false}}},
	} {
		c := alice
		if rt.anon {
			c = anon
		}
		frame := func(id, name, value string) string {
			var b strings.Builder
			fmt.Fprintf(&b, `{"type":%q,"id":%q`, rt.typ, id)
			for k, v := range rt.base {
				if k == name {
					v = value
				}
				if v != "" {
					fmt.Fprintf(&b, `,%q:%s`, k, v)
				}
			}
			return b.String() + "}"
		}
		for _, f := range rt.fields {
			for i, v := range append(f.wrong, "null", "") {
				id := fmt.Sprintf("%s.%s.%d", rt.typ, f.name, i)
				c.Send(frame(id, f.name, v))
				switch {
				case v == "null" || v == "": // null or absent
					if f.required {
						c.Expect(`{"type":"error","id":"` + id + `","code":"bad_request"}`)
					} else {
						c.Expect(`{"type":"ok","id":"` + id + `"}`)
					}
				default:
					c.Expect(`{"type":"error","id":"` + id + `","code":"bad_request"}`)
				}
			}
		}
		// A wrong id type is a bad_request with id null, whatever the type.
		for _, v := range []string{`true`, `{}`, `[]`, `["x"]`} {
			c.Send(strings.Replace(frame("", "", ""), `"id":""`, `"id":`+v, 1))
			c.Expect(`{"type":"error","id":null,"code":"bad_request"}`)
		}
	}
	// Nothing changed: the send with cid "c" (optional null / absent) was
	// the only one stored; wt-reg was never registered, anon is logged out.
	bob.Expect(`{"type":"msg","body":"x"}`)
	bob.Expect(`{"type":"msg","body":"x"}`)
	bob.ExpectSilence(100 * time.Millisecond)
	anon.Send(`{"type":"users","id":"u"}`)
	anon.Expect(`{"type":"error","id":"u","code":"not_logged_in"}`)
	anon.Register("wt-reg", "password1")
	// Requests without fields ignore extra fields of any type.
	for i, v := range append(str, `null`, `"s"`) {
		alice.Send(fmt.Sprintf(`{"type":"users","id":%d,"limit":%s,"to":%s,"user":%s}`, i, v, v, v))
		alice.Expect(fmt.Sprintf(`{"type":"ok","id":%d}`, i))
	}
	stillServing(t, s)
}

// TestBadInputSecondLogin: a second login on a logged-in connection is
// already_logged_in, whoever it names and whatever the password (field
// errors come first), and changes neither who the connection is nor the
// online set.
func TestBadInputSecondLogin(t *testing.T) {
	s := daemontest.Start(t, daemontest.Unlimited)
	s.User(t, "bob").C.Close()
	alice := s.User(t, "alice")
	expectEach(t, alice, [][2]string{
		{`{"type":"login","id":1,"user":"bob","password":"password1"}`, `{"type":"error","id":1,"code":"already_logged_in"}`},
		{`{"type":"login","id":2,"user":"bob","password":"wrong-password"}`, `{"type":"error","id":2,"code":"already_logged_in"}`},
		{`{"type":"login","id":3,"user":"nobody","password":"password1"}`, `{"type":"error","id":3,"code":"already_logged_in"}`},
		{`{"type":"login","id":4,"user":"bob"}`, `{"type":"error","id":4,"code":"bad_request"}`},
	})
	deadline := time.Now().Add(time.Second)
	for {
		alice.Send(`{"type":"users","id":"u"}`)
		users := alice.Expect(`{"type":"ok","id":"u"}`).Users
		if fmt.Sprint(users) == "[alice]" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("users = %v, want [alice]", users)
		}
		time.Sleep(10 * time.Millisecond)
	}
	alice.Send(`{"type":"send","id":"me","to":"alice","body":"who am i"}`)
	alice.Expect(`{"type":"ok","id":"me","status":"sent"}`)
	alice.Expect(`{"type":"msg","from":"alice","to":"alice","body":"who am i"}`)
	noneStored(t, s, "bob")
	stillServing(t, s)
}

// TestBadInputSilence: a connection that says nothing, or only part of a
// frame, or drips a frame slowly, is kicked idle at login_timeout (a
// partial frame does not extend it); a logged-in one that drips a frame is
// kicked at idle_timeout.
func TestBadInputSilence(t *testing.T) {
	const login, idle = 300 * time.Millisecond, 500 * time.Millisecond
	s := daemontest.Start(t, daemontest.Unlimited, func(c *config.Config) {
		c.Limits.LoginTimeout = login
		c.Limits.IdleTimeout = idle
	})
	s.User(t, "dripper").C.Close()
	for _, tc := range []struct {
		name     string
		loggedIn bool
		burst    string // written at once
		drip     string // then written a byte every 50 ms until the kick
	}{
		{"silent", false, "", ""},
		{"partial frame", false, `{"type":"log`, ""},
		{"dripping a frame", false, "", `{"type":"ping","id":"` + strings.Repeat("x", 100)},
		{"logged in, partial frame", true, `{"type":"ping","id":"x`, ""},
		{"logged in, dripping a frame", true, "", `{"type":"ping","id":"` + strings.Repeat("x", 100)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := s.Dial(t)
			start := time.Now()
			limit := login
			if tc.loggedIn {
				c.Login("dripper", "password1")
				start, limit = time.Now(), idle
			}
			if tc.burst != "" {
				c.SendRaw([]byte(tc.burst))
			}
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				for i := 0; i < len(tc.drip); i++ {
					select {
					case <-stop:
						return
					case <-time.After(50 * time.Millisecond):
					}
					c.C.SetWriteDeadline(time.Now().Add(time.Second))
					if _, err := c.C.Write([]byte{tc.drip[i]}); err != nil {
						return
					}
				}
			}()
			c.Expect(`{"type":"kicked","reason":"idle"}`)
			took := time.Since(start)
			close(stop)
			<-done
			c.ExpectClosed()
			if took < limit-50*time.Millisecond || took > limit+2*time.Second {
				t.Fatalf("kicked after %v, want about %v", took, limit)
			}
		})
	}
	stillServing(t, s)
}
