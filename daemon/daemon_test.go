package daemon_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/daemon/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestHello(t *testing.T) {
	s := daemontest.Start(t)
	c := daemontest.DialRaw(t, s.Addr)
	c.Expect(`{"type":"hello","server":"qqd","version":"0.0.0-test","proto":1}`)
}

// TestErrors walks every general error of the contract on one connection,
// which must stay usable after each.
func TestErrors(t *testing.T) {
	s := daemontest.Start(t)
	c := s.Dial(t)
	for _, tc := range []struct{ send, want string }{
		{`not json`, `{"type":"error","id":null,"code":"bad_request"}`},
		{`[1,2]`, `{"type":"error","id":null,"code":"bad_request"}`},
		{`{"type":"ping"} {"type":"ping"}`, `{"type":"error","id":null,"code":"bad_request"}`},
		{"{\"type\":\"ping\",\"id\":\"\xff\"}", `{"type":"error","id":null,"code":"bad_request"}`},
		{`{"type":"ping","id":true}`, `{"type":"error","id":null,"code":"bad_request"}`},
		{`{"type":"ping","id":[1]}`, `{"type":"error","id":null,"code":"bad_request"}`},
		{`{"id":"a"}`, `{"type":"error","id":"a","code":"bad_request"}`},
		{`{"type":7,"id":"b"}`, `{"type":"error","id":"b","code":"bad_request"}`},
		{`{"type":"fly","id":"c"}`, `{"type":"error","id":"c","code":"unknown_type"}`},
		{`{"type":"send","id":"d","to":"x","body":"y"}`, `{"type":"error","id":"d","code":"not_logged_in"}`},
		{`{"type":"ack","id":"e","msg_ids":[]}`, `{"type":"error","id":"e","code":"not_logged_in"}`},
		{`{"type":"offline","id":"f"}`, `{"type":"error","id":"f","code":"not_logged_in"}`},
		{`{"type":"users","id":"g"}`, `{"type":"error","id":"g","code":"not_logged_in"}`},
		{`{"type":"history","id":"h","with":"x"}`, `{"type":"error","id":"h","code":"not_logged_in"}`},
		{`{"type":"logout","id":"i"}`, `{"type":"error","id":"i","code":"not_logged_in"}`},
		// The login check comes before field checks.
		{`{"type":"send","id":"j"}`, `{"type":"error","id":"j","code":"not_logged_in"}`},
		{`{"type":"ping","id":42}`, `{"type":"ok","id":42}`},
		{`{"type":"ping","id":-0.5}`, `{"type":"ok","id":-0.5}`},
		{`{"type":"ping","id":9007199254740991}`, `{"type":"ok","id":9007199254740991}`},
		{`{"type":"ping"}`, `{"type":"ok","id":null}`},
		{`{"type":"ping","id":null,"extra":{"x":[1]}}`, `{"type":"ok","id":null}`},
		{`{"type":"register","id":"k","user":"Bad Name","password":"password1"}`, `{"type":"error","id":"k","code":"bad_request"}`},
		{`{"type":"register","id":"l","user":"okname","password":"short"}`, `{"type":"error","id":"l","code":"bad_request"}`},
		{`{"type":"register","id":"m","user":"okname"}`, `{"type":"error","id":"m","code":"bad_request"}`},
		{`{"type":"register","id":"n","user":5,"password":"password1"}`, `{"type":"error","id":"n","code":"bad_request"}`},
		{`{"type":"register","id":"o","user":"` + strings.Repeat("a", 33) + `","password":"password1"}`, `{"type":"error","id":"o","code":"bad_request"}`},
		{`{"type":"register","id":"p","user":"okname","password":"` + strings.Repeat("p", 1025) + `"}`, `{"type":"error","id":"p","code":"bad_request"}`},
		{`{"type":"login","id":"q","user":"nobody","password":"password1"}`, `{"type":"error","id":"q","code":"auth_failed"}`},
		{`{"type":"login","id":"r","user":"nobody"}`, `{"type":"error","id":"r","code":"bad_request"}`},
	} {
		c.Send(tc.send)
		c.Expect(tc.want)
	}
	c.Send(`{"type":"ping","id":"still-alive"}`)
	c.Expect(`{"type":"ok","id":"still-alive"}`)
}

func TestLoggedInErrors(t *testing.T) {
	s := daemontest.Start(t, func(c *config.Config) { c.Limits.MaxBodyBytes = 4096 })
	alice := s.User(t, "alice")
	s.User(t, "bob")
	big := strings.Repeat("b", 4096)
	for _, tc := range []struct{ send, want string }{
		{`{"type":"login","id":1,"user":"alice","password":"password1"}`, `{"type":"error","id":1,"code":"already_logged_in"}`},
		{`{"type":"send","id":2,"to":"nobody","body":"x"}`, `{"type":"error","id":2,"code":"unknown_user"}`},
		{`{"type":"send","id":3,"to":"` + strings.Repeat("n", 40) + `","body":"x"}`, `{"type":"error","id":3,"code":"unknown_user"}`},
		{`{"type":"send","id":4,"to":"bob","body":""}`, `{"type":"error","id":4,"code":"bad_request"}`},
		{`{"type":"send","id":5,"to":"bob","body":5}`, `{"type":"error","id":5,"code":"bad_request"}`},
		{`{"type":"send","id":6,"to":"bob"}`, `{"type":"error","id":6,"code":"bad_request"}`},
		{`{"type":"send","id":7,"to":"bob","body":"` + big + `"}`, `{"type":"ok","id":7,"status":"sent"}`},
		{`{"type":"send","id":8,"to":"bob","body":"` + big + `x"}`, `{"type":"error","id":8,"code":"too_large"}`},
		{`{"type":"send","id":9,"to":"bob","body":"x","cid":""}`, `{"type":"error","id":9,"code":"bad_request"}`},
		{`{"type":"send","id":10,"to":"bob","body":"x","cid":"` + strings.Repeat("c", 129) + `"}`, `{"type":"error","id":10,"code":"bad_request"}`},
		{`{"type":"send","id":11,"to":"bob","body":"x","cid":null}`, `{"type":"ok","id":11}`},
		{`{"type":"ack","id":12}`, `{"type":"error","id":12,"code":"bad_request"}`},
		{`{"type":"ack","id":13,"msg_ids":"x"}`, `{"type":"error","id":13,"code":"bad_request"}`},
		{`{"type":"ack","id":14,"msg_ids":[1]}`, `{"type":"error","id":14,"code":"bad_request"}`},
		{`{"type":"ack","id":15,"msg_ids":["nope"]}`, `{"type":"ok","id":15}`},
		{`{"type":"offline","id":16,"limit":0}`, `{"type":"error","id":16,"code":"bad_request"}`},
		{`{"type":"offline","id":17,"limit":-5}`, `{"type":"error","id":17,"code":"bad_request"}`},
		{`{"type":"offline","id":18,"limit":1.5}`, `{"type":"error","id":18,"code":"bad_request"}`},
		{`{"type":"offline","id":19,"limit":"3"}`, `{"type":"error","id":19,"code":"bad_request"}`},
		{`{"type":"offline","id":20,"limit":1e300}`, `{"type":"ok","id":20,"messages":[],"more":false}`},
		{`{"type":"history","id":21,"with":"nobody"}`, `{"type":"error","id":21,"code":"unknown_user"}`},
		{`{"type":"history","id":22}`, `{"type":"error","id":22,"code":"bad_request"}`},
		{`{"type":"history","id":23,"with":"bob","before":""}`, `{"type":"error","id":23,"code":"bad_request"}`},
		{`{"type":"history","id":24,"with":"bob","before":"no-such-id"}`, `{"type":"error","id":24,"code":"bad_request"}`},
		{`{"type":"history","id":25,"with":"bob","limit":0}`, `{"type":"error","id":25,"code":"bad_request"}`},
		{`{"type":"register","id":26,"user":"alice","password":"password1"}`, `{"type":"error","id":26,"code":"user_exists"}`},
		{`{"type":"register","id":27,"user":"carol","password":"password1"}`, `{"type":"ok","id":27}`},
		{`{"type":"users","id":28}`, `{"type":"ok","id":28,"users":["alice","bob"]}`},
	} {
		alice.Send(tc.send)
		alice.Expect(tc.want)
	}
	// register on a logged-in connection did not change who it is.
	alice.Send(`{"type":"send","id":"me","to":"alice","body":"self"}`)
	alice.Expect(`{"type":"ok","id":"me"}`)
	alice.Expect(`{"type":"msg","from":"alice","to":"alice","body":"self"}`)
}

func TestRegistrationClosed(t *testing.T) {
	s := daemontest.Start(t, func(c *config.Config) { c.Registration = config.RegistrationClosed })
	c := s.Dial(t)
	c.Send(`{"type":"register","id":1,"user":"alice","password":"password1"}`)
	c.Expect(`{"type":"error","id":1,"code":"registration_closed"}`)
	// Field errors still come first.
	c.Send(`{"type":"register","id":2,"user":"alice"}`)
	c.Expect(`{"type":"error","id":2,"code":"bad_request"}`)
}

func TestWrongPasswordSameAsUnknownUser(t *testing.T) {
	s := daemontest.Start(t)
	s.User(t, "alice")
	c := s.Dial(t)
	c.Send(`{"type":"login","id":1,"user":"alice","password":"wrong-password"}`)
	wrong := c.Expect(`{"type":"error","id":1,"code":"auth_failed"}`)
	c.Send(`{"type":"login","id":1,"user":"nobody","password":"wrong-password"}`)
	unknown := c.Expect(`{"type":"error","id":1,"code":"auth_failed"}`)
	if wrong.Message != unknown.Message {
		t.Errorf("messages differ: %q vs %q", wrong.Message, unknown.Message)
	}
	// A failed login leaves the connection logged out.
	c.Send(`{"type":"users","id":2}`)
	c.Expect(`{"type":"error","id":2,"code":"not_logged_in"}`)
	c.Login("alice", "password1")
}

func TestFraming(t *testing.T) {
	s := daemontest.Start(t)
	c := s.Dial(t)
	// Two frames in one write, CRLF, blank and whitespace-only lines.
	c.SendRaw([]byte("{\"type\":\"ping\",\"id\":1}\r\n\n   \t \r\n{\"type\":\"ping\",\"id\":2}\n"))
	c.Expect(`{"type":"ok","id":1}`)
	c.Expect(`{"type":"ok","id":2}`)
	// One frame split over many writes.
	frame := `{"type":"ping","id":"split"}` + "\r\n"
	for i := 0; i < len(frame); i++ {
		c.SendRaw([]byte{frame[i]})
		time.Sleep(time.Millisecond)
	}
	c.Expect(`{"type":"ok","id":"split"}`)
}

func TestFrameTooLarge(t *testing.T) {
	s := daemontest.Start(t)
	other := s.User(t, "other")
	max := s.Config.Limits.MaxFrameBytes

	// A frame of exactly max bytes is accepted (it is a bad_request only
	// because it is not JSON).
	c := s.Dial(t)
	c.SendRaw([]byte(strings.Repeat(" ", max-2) + "{}\r\n"))
	c.Expect(`{"type":"error","id":null,"code":"bad_request"}`)

	// max+1 bytes without a newline: error and close, without waiting for
	// the line to end.
	c.SendRaw([]byte(strings.Repeat("x", max+1)))
	c.Expect(`{"type":"error","id":null,"code":"frame_too_large"}`)
	c.ExpectClosed()

	// A slow drip of a long line gets the same.
	d := s.Dial(t)
	chunk := []byte(strings.Repeat("y", 8192))
	for sent := 0; sent <= max; sent += len(chunk) {
		d.SendRaw(chunk)
	}
	d.Expect(`{"type":"error","id":null,"code":"frame_too_large"}`)
	d.ExpectClosed()

	// Everyone else is served.
	other.Send(`{"type":"ping","id":"fine"}`)
	other.Expect(`{"type":"ok","id":"fine"}`)
}

func TestSendReceive(t *testing.T) {
	s := daemontest.Start(t)
	alice := s.User(t, "alice")
	bob := s.User(t, "bob")
	body := "héllo 中文 😀\nsecond line\t\"quoted\" \\ \u0000 end"
	alice.Send(`{"type":"send","id":"s1","to":"bob","from":"mallory","body":` + jsonString(body) + `}`)
	ok := alice.Expect(`{"type":"ok","id":"s1","status":"sent"}`)
	if ok.MsgID == "" || ok.TS == 0 || ok.Body != "" {
		t.Fatalf("ok = %+v: want msg_id, ts and no body (not rewritten)", ok)
	}
	push := bob.Expect(`{"type":"msg","from":"alice","to":"bob"}`)
	if push.Body != body || push.MsgID != ok.MsgID || push.TS != ok.TS {
		t.Fatalf("push = %+v, want body %q id %s ts %d", push, body, ok.MsgID, ok.TS)
	}
	// Queued for an offline user.
	carol := s.User(t, "carol")
	carol.Send(`{"type":"logout","id":"bye"}`)
	carol.Expect(`{"type":"ok","id":"bye"}`)
	alice.Send(`{"type":"send","id":"s2","to":"carol","body":"later"}`)
	alice.Expect(`{"type":"ok","id":"s2","status":"queued"}`)
	// History shows both directions in order.
	bob.Send(`{"type":"send","id":"r1","to":"alice","body":"reply"}`)
	bob.Expect(`{"type":"ok","id":"r1"}`)
	alice.Expect(`{"type":"msg","from":"bob","body":"reply"}`)
	bob.Send(`{"type":"history","id":"h","with":"alice"}`)
	h := bob.Expect(`{"type":"ok","id":"h","more":false}`)
	if len(h.Messages) != 2 || h.Messages[0].Body != body || h.Messages[1].Body != "reply" {
		t.Fatalf("history = %+v", h.Messages)
	}
}

func TestOfflineDeliveryAndAck(t *testing.T) {
	s := daemontest.Start(t)
	alice := s.User(t, "alice")
	bob := s.User(t, "bob")
	bob.Send(`{"type":"logout","id":"bye"}`)
	bob.Expect(`{"type":"ok","id":"bye"}`)
	bob.ExpectClosed()
	for i := range 5 {
		alice.Send(fmt.Sprintf(`{"type":"send","id":%d,"to":"bob","body":"m%d"}`, i, i))
		alice.Expect(fmt.Sprintf(`{"type":"ok","id":%d,"status":"queued"}`, i))
	}
	bob = s.Dial(t)
	if n := bob.Login("bob", "password1"); n != 5 {
		t.Fatalf("pending = %d, want 5", n)
	}
	bob.Send(`{"type":"offline","id":"o1","limit":3}`)
	p1 := bob.Expect(`{"type":"ok","id":"o1","more":true}`)
	if len(p1.Messages) != 3 || p1.Messages[0].Body != "m0" || p1.Messages[2].Body != "m2" {
		t.Fatalf("page 1 = %+v", p1.Messages)
	}
	// Without an ack, offline returns the same page.
	bob.Send(`{"type":"offline","id":"o2","limit":3}`)
	if p := bob.Expect(`{"type":"ok","id":"o2","more":true}`); p.Messages[0].ID != p1.Messages[0].ID {
		t.Fatalf("unacked page changed: %+v", p.Messages)
	}
	ids := fmt.Sprintf(`[%q,%q,%q]`, p1.Messages[0].ID, p1.Messages[1].ID, p1.Messages[2].ID)
	bob.Send(`{"type":"ack","id":"a","msg_ids":` + ids + `}`)
	bob.Expect(`{"type":"ok","id":"a"}`)
	bob.Send(`{"type":"offline","id":"o3"}`)
	p2 := bob.Expect(`{"type":"ok","id":"o3","more":false}`)
	if len(p2.Messages) != 2 || p2.Messages[0].Body != "m3" {
		t.Fatalf("page 2 = %+v", p2.Messages)
	}
}

func TestPushedButUnackedStaysPending(t *testing.T) {
	s := daemontest.Start(t)
	alice := s.User(t, "alice")
	bob := s.User(t, "bob")
	alice.Send(`{"type":"send","id":1,"to":"bob","body":"unacked"}`)
	alice.Expect(`{"type":"ok","id":1,"status":"sent"}`)
	bob.Expect(`{"type":"msg","body":"unacked"}`)
	bob.C.Close() // drop without ack
	bob2 := s.Dial(t)
	if n := bob2.Login("bob", "password1"); n != 1 {
		t.Fatalf("pending after reconnect = %d, want 1", n)
	}
	bob2.Send(`{"type":"offline","id":2}`)
	if p := bob2.Expect(`{"type":"ok","id":2}`); len(p.Messages) != 1 || p.Messages[0].Body != "unacked" {
		t.Fatalf("offline = %+v", p.Messages)
	}
}

func TestMultiSession(t *testing.T) {
	s := daemontest.Start(t)
	alice := s.User(t, "alice")
	b1 := s.User(t, "bob")
	b2 := s.Dial(t)
	b2.Login("bob", "password1")
	alice2 := s.Dial(t)
	alice2.Login("alice", "password1")

	alice.Send(`{"type":"send","id":1,"to":"bob","body":"both"}`)
	ok := alice.Expect(`{"type":"ok","id":1,"status":"sent"}`)
	m1 := b1.Expect(`{"type":"msg","body":"both"}`)
	b2.Expect(`{"type":"msg","body":"both"}`)
	// The sender's other session gets no copy.
	alice2.ExpectSilence(100 * time.Millisecond)

	// An ack from one session settles it for all.
	b2.Send(fmt.Sprintf(`{"type":"ack","id":2,"msg_ids":[%q]}`, m1.MsgID))
	b2.Expect(`{"type":"ok","id":2}`)
	b1.Send(`{"type":"offline","id":3}`)
	if p := b1.Expect(`{"type":"ok","id":3}`); len(p.Messages) != 0 {
		t.Fatalf("still pending after ack from another session: %+v", p.Messages)
	}
	_ = ok

	// A message to oneself reaches every session, the sending one too.
	alice.Send(`{"type":"send","id":4,"to":"alice","body":"note"}`)
	alice.Expect(`{"type":"ok","id":4,"status":"sent"}`)
	alice.Expect(`{"type":"msg","from":"alice","to":"alice","body":"note"}`)
	alice2.Expect(`{"type":"msg","from":"alice","to":"alice","body":"note"}`)
}

func TestCIDRetry(t *testing.T) {
	s := daemontest.Start(t)
	alice := s.User(t, "alice")
	bob := s.User(t, "bob")
	alice.Send(`{"type":"send","id":1,"to":"bob","body":"once","cid":"c-1"}`)
	first := alice.Expect(`{"type":"ok","id":1,"status":"sent"}`)
	m := bob.Expect(`{"type":"msg","body":"once"}`)
	bob.Send(fmt.Sprintf(`{"type":"ack","id":"a","msg_ids":[%q]}`, m.MsgID))
	bob.Expect(`{"type":"ok","id":"a"}`)
	// Retry with other to and body, after the ack: same answer, no delivery.
	alice.Send(`{"type":"send","id":2,"to":"alice","body":"different","cid":"c-1"}`)
	again := alice.Expect(`{"type":"ok","id":2,"status":"sent"}`)
	if again.MsgID != first.MsgID || again.TS != first.TS {
		t.Fatalf("retry = %+v, first = %+v", again, first)
	}
	alice.ExpectSilence(100 * time.Millisecond)
	bob.ExpectSilence(100 * time.Millisecond)
	// The key is (sender, cid): bob may use the same cid.
	bob.Send(`{"type":"send","id":3,"to":"alice","body":"mine","cid":"c-1"}`)
	if b := bob.Expect(`{"type":"ok","id":3}`); b.MsgID == first.MsgID {
		t.Fatal("cid shared across senders")
	}
}

// TestCIDFirst: a send marked "first" skips the de-duplication lookup
// before the filters (qqd_plugin_call_duration_seconds counts no
// LookupCIDs for it), and a repeated cid marked first anyway is still
// answered with the first message and not delivered again: the
// storage's Write de-duplicates.
func TestCIDFirst(t *testing.T) {
	s, reg := startLimited(t)
	alice := s.User(t, "alice")
	bob := s.User(t, "bob")
	lookups := func() float64 {
		return daemontest.MetricValue(t, reg, "qqd_plugin_call_duration_seconds", "method", "LookupCIDs")
	}
	before := lookups()
	alice.Send(`{"type":"send","id":1,"to":"bob","body":"once","cid":"c-1","first":true}`)
	first := alice.Expect(`{"type":"ok","id":1,"status":"sent"}`)
	bob.Expect(`{"type":"msg","body":"once"}`)
	alice.Send(`{"type":"send","id":2,"to":"bob","body":"once","cid":"c-1","first":true}`)
	again := alice.Expect(`{"type":"ok","id":2,"status":"sent"}`)
	if again.MsgID != first.MsgID || again.TS != first.TS {
		t.Fatalf("repeated first send = %+v, first = %+v", again, first)
	}
	if n := lookups(); n != before {
		t.Errorf("sends marked first made %v LookupCIDs calls", n-before)
	}
	// Without the mark, the retry is looked up, with the same answer.
	alice.Send(`{"type":"send","id":3,"to":"bob","body":"once","cid":"c-1","first":false}`)
	if r := alice.Expect(`{"type":"ok","id":3,"status":"sent"}`); r.MsgID != first.MsgID {
		t.Fatalf("retry = %+v, first = %+v", r, first)
	}
	if n := lookups(); n != before+1 {
		t.Errorf("a send not marked first made %v LookupCIDs calls, want 1", n-before)
	}
	bob.ExpectSilence(100 * time.Millisecond)
	alice.Send(`{"type":"send","id":4,"to":"bob","body":"x","cid":"c-2","first":"yes"}`)
	alice.Expect(`{"type":"error","id":4,"code":"bad_request"}`)
}

func TestOrderThousand(t *testing.T) {
	s := daemontest.Start(t)
	alice := s.User(t, "alice")
	bob := s.User(t, "bob")
	const n = 1000
	var sb strings.Builder
	for i := range n {
		fmt.Fprintf(&sb, `{"type":"send","id":%d,"to":"bob","body":"%d"}`+"\n", i, i)
	}
	go alice.SendRaw([]byte(sb.String())) // pipelined
	for i := range n {
		alice.Expect(fmt.Sprintf(`{"type":"ok","id":%d}`, i))
	}
	for i := range n {
		bob.Expect(fmt.Sprintf(`{"type":"msg","body":"%d"}`, i))
	}
	// history_page_max (500) clamps the limit: two pages.
	bob.Send(`{"type":"history","id":"h1","with":"alice","limit":1000}`)
	newer := bob.Expect(`{"type":"ok","id":"h1","more":true}`).Messages
	bob.Send(fmt.Sprintf(`{"type":"history","id":"h2","with":"alice","limit":1000,"before":%q}`, newer[0].ID))
	all := append(bob.Expect(`{"type":"ok","id":"h2","more":false}`).Messages, newer...)
	if len(all) != n {
		t.Fatalf("history has %d messages, want %d", len(all), n)
	}
	for i, m := range all {
		if m.Body != fmt.Sprint(i) || (i > 0 && m.TS < all[i-1].TS) {
			t.Fatalf("history[%d] = %+v", i, m)
		}
	}
}

func TestHistoryPaging(t *testing.T) {
	s := daemontest.Start(t)
	alice := s.User(t, "alice")
	bob := s.User(t, "bob")
	carol := s.User(t, "carol")
	for i := range 7 {
		alice.Send(fmt.Sprintf(`{"type":"send","id":%d,"to":"bob","body":"%d"}`, i, i))
		alice.Expect(`{"type":"ok"}`)
		bob.Expect(`{"type":"msg"}`)
	}
	carol.Send(`{"type":"send","id":"c","to":"alice","body":"other conversation"}`)
	cm := carol.Expect(`{"type":"ok","id":"c"}`)
	alice.Expect(`{"type":"msg"}`)

	alice.Send(`{"type":"history","id":1,"with":"bob","limit":3}`)
	p := alice.Expect(`{"type":"ok","id":1,"more":true}`)
	if got := bodies(p.Messages); got != "4 5 6" {
		t.Fatalf("newest page = %s", got)
	}
	alice.Send(fmt.Sprintf(`{"type":"history","id":2,"with":"bob","limit":3,"before":%q}`, p.Messages[0].ID))
	p = alice.Expect(`{"type":"ok","id":2,"more":true}`)
	if got := bodies(p.Messages); got != "1 2 3" {
		t.Fatalf("second page = %s", got)
	}
	alice.Send(fmt.Sprintf(`{"type":"history","id":3,"with":"bob","limit":3,"before":%q}`, p.Messages[0].ID))
	p = alice.Expect(`{"type":"ok","id":3,"more":false}`)
	if got := bodies(p.Messages); got != "0" {
		t.Fatalf("last page = %s", got)
	}
	// A msg_id of another conversation is a bad cursor.
	alice.Send(fmt.Sprintf(`{"type":"history","id":4,"with":"bob","before":%q}`, cm.MsgID))
	alice.Expect(`{"type":"error","id":4,"code":"bad_request"}`)
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func bodies(ms []protocol.Message) string {
	var b []string
	for _, m := range ms {
		b = append(b, m.Body)
	}
	return strings.Join(b, " ")
}

func TestUsersList(t *testing.T) {
	s := daemontest.Start(t)
	zed := s.User(t, "zed")
	s.User(t, "amy")
	bob := s.User(t, "bob.b")
	zed.Send(`{"type":"users","id":1}`)
	zed.Expect(`{"type":"ok","id":1,"users":["amy","bob.b","zed"]}`)
	bob.Send(`{"type":"logout","id":"x"}`)
	bob.Expect(`{"type":"ok","id":"x"}`)
	bob.ExpectClosed()
	zed.Send(`{"type":"users","id":2}`)
	zed.Expect(`{"type":"ok","id":2,"users":["amy","zed"]}`)
	// A dropped connection leaves the list within 1 s.
	amy2 := s.Dial(t)
	amy2.Login("amy", "password1")
	amy2.C.Close()
	deadline := time.Now().Add(time.Second)
	for {
		zed.Send(`{"type":"users","id":3}`)
		f := zed.Expect(`{"type":"ok","id":3}`)
		if strings.Join(f.Users, ",") == "amy,zed" {
			break // amy still has her first connection
		}
		if time.Now().After(deadline) {
			t.Fatalf("users = %v", f.Users)
		}
	}
}

func TestSlowReaderDoesNotDelayOthers(t *testing.T) {
	s := daemontest.Start(t, func(c *config.Config) {
		c.Limits.OutboundQueueBytes = 256 << 10
		c.Limits.WriteTimeout = 2 * time.Second
	})
	sender := s.User(t, "sender")
	slow := s.User(t, "slow") // never reads from here on
	fast := s.User(t, "fast")
	n := int64(daemontest.FloodStuckReader(t, sender, fast, 1500))
	// slow's output passed the limit long ago: it is offline now, and
	// every message is still pending for it.
	fast.Send(`{"type":"users","id":"u"}`)
	fast.Expect(`{"type":"ok","id":"u","users":["fast","sender"]}`)
	// It got every frame that fit, then the kicked push if the kernel's
	// buffers had room for it (they may not: the client was not reading),
	// then the close.
	for {
		line, err := slow.TryRead()
		if err != nil {
			break
		}
		var f protocol.ServerFrame
		json.Unmarshal([]byte(line), &f)
		if f.Type == protocol.TypeKicked {
			if f.Reason != "slow_consumer" {
				t.Fatalf("slow got %+v, want kicked slow_consumer", f)
			}
			slow.ExpectClosed()
			break
		}
		if f.Type != protocol.TypeMsg {
			t.Fatalf("slow got %s", line)
		}
	}
	again := s.Dial(t)
	if got := again.Login("slow", "password1"); got != n {
		t.Fatalf("pending after slow_consumer kick = %d, want %d", got, n)
	}
}

func TestIdleAndLoginTimeouts(t *testing.T) {
	s := daemontest.Start(t, func(c *config.Config) {
		c.Limits.LoginTimeout = 300 * time.Millisecond
		c.Limits.IdleTimeout = 500 * time.Millisecond
	})
	anon := s.Dial(t)
	// Pings do not extend the login deadline.
	anon.Send(`{"type":"ping","id":1}`)
	anon.Expect(`{"type":"ok","id":1}`)
	anon.Expect(`{"type":"kicked","reason":"idle"}`)
	anon.ExpectClosed()

	u := s.User(t, "idler")
	for range 3 { // activity keeps it alive past the idle timeout
		time.Sleep(250 * time.Millisecond)
		u.Send(`{"type":"ping","id":2}`)
		u.Expect(`{"type":"ok","id":2}`)
	}
	u.Expect(`{"type":"kicked","reason":"idle"}`)
	u.ExpectClosed()
}

func TestShutdownKicksAndStoresInflight(t *testing.T) {
	s := daemontest.Start(t)
	alice := s.User(t, "alice")
	s.User(t, "bob")
	var sb strings.Builder
	for i := range 50 {
		fmt.Fprintf(&sb, `{"type":"send","id":%d,"to":"bob","body":"x%d"}`+"\n", i, i)
	}
	alice.SendRaw([]byte(sb.String()))
	alice.Expect(`{"type":"ok","id":0}`)
	s.Shutdown()
	// Every send the server read got an answer before the kick.
	oks := 1
	for {
		f := alice.Read()
		if f.Type == protocol.TypeKicked {
			if f.Reason != "shutdown" {
				t.Fatalf("kicked %+v", f)
			}
			break
		}
		if f.Type != protocol.TypeOK {
			t.Fatalf("got %+v", f)
		}
		oks++
	}
	alice.ExpectClosed()
	n, err := s.Store.PendingCount(t.Context(), "bob")
	if err != nil || n != int64(oks) {
		t.Fatalf("bob has %d pending (%v); alice got %d oks", n, err, oks)
	}
}

// TestShutdownSpreadsReconnects: the kicked shutdown push tells each
// client when to come back, a retry_after_ms spread over
// reconnect_spread; with 0 there is no hint.
func TestShutdownSpreadsReconnects(t *testing.T) {
	for _, spread := range []time.Duration{2 * time.Second, 0} {
		t.Run(spread.String(), func(t *testing.T) {
			s := daemontest.Start(t, func(c *config.Config) { c.ReconnectSpread = spread })
			conns := make([]*daemontest.Conn, 20)
			for i := range conns {
				conns[i] = s.User(t, fmt.Sprintf("u%d", i))
			}
			s.Shutdown()
			seen := map[int64]bool{}
			for _, c := range conns {
				f := c.Expect(`{"type":"kicked","reason":"shutdown"}`)
				if spread == 0 && f.RetryAfterMS != 0 || spread > 0 && (f.RetryAfterMS < 1 || f.RetryAfterMS > spread.Milliseconds()) {
					t.Fatalf("retry_after_ms %d, want 1..%d", f.RetryAfterMS, spread.Milliseconds())
				}
				seen[f.RetryAfterMS] = true
				c.ExpectClosed()
			}
			if spread > 0 && len(seen) < 10 {
				t.Errorf("20 clients told %d distinct times: %v", len(seen), seen)
			}
		})
	}
}
