package daemon_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/daemon/daemontest"
)

// protocolDoc is the page whose examples TestProtocolDocExamples replays.
const protocolDoc = "../docs/protocol.md"

// docBlock is one console block of the page: the transcript of one
// connection, named by the <!-- replay: NAME --> comment above it.
type docBlock struct {
	conn  string
	line  int // of the opening fence, for messages
	lines []string
}

// docBlocks returns the console blocks of the page at path. Every console
// block must be named, so that a new example cannot escape the replay.
func docBlocks(t *testing.T, path string) []docBlock {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	replay := regexp.MustCompile(`^<!-- replay: ([a-z0-9-]+) -->$`)
	var blocks []docBlock
	var cur *docBlock
	name, prev := "", ""
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur != nil && line == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.lines = append(cur.lines, line)
		case line == "```console":
			if m := replay.FindStringSubmatch(prev); m != nil {
				name = m[1]
			} else {
				t.Fatalf("%s:%d: console block without a <!-- replay: NAME --> line just above it", path, n)
			}
			cur = &docBlock{conn: name, line: n}
		}
		prev = line
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Fatalf("%s:%d: console block not closed", path, cur.line)
	}
	return blocks
}

// serverTypes are the frame types only the server writes; a transcript
// line of another type, or one that is not JSON, is what the client typed.
var serverTypes = map[string]bool{"hello": true, "ok": true, "error": true, "msg": true, "kicked": true, "notice": true,
	"friend_added": true, "friend_removed": true, "friend_declined": true, "friend_cancelled": true,
	"group_entry": true, "group_join_request": true}

// pushAndRequest are types both a request and a push: the page's request
// lines carry an id, its pushes do not.
var pushAndRequest = map[string]bool{"friend_request": true, "presence": true, "typing": true}

// serverLine reports whether the page's line is one the server writes.
func serverLine(line, typ string) bool {
	if pushAndRequest[typ] {
		var f map[string]json.RawMessage
		json.Unmarshal([]byte(line), &f)
		_, hasID := f["id"]
		return !hasID
	}
	return serverTypes[typ]
}

func frameType(line string) (typ string, id json.RawMessage) {
	var f struct {
		Type string          `json:"type"`
		ID   json.RawMessage `json:"id"`
	}
	if json.Unmarshal([]byte(line), &f) != nil {
		return "", nil
	}
	return f.Type, f.ID
}

// docConn is one connection of the replay.
type docConn struct {
	c      *daemontest.Conn
	user   string // logged in as, from the ok to a login
	closed bool
	// logoutID is the id of a logout sent and not yet answered.
	logoutID string
	// notices are broadcasts queued for this connection that its
	// transcript does not show.
	notices []string
}

// docReplay replays the page's transcripts against one server.
type docReplay struct {
	t     *testing.T
	s     *daemontest.Server
	conns map[string]*docConn
	// Values the server makes up, from the page's to the server's: msg_id
	// (both ways, as ids are unique) and ts.
	ids, idsBack, ts map[string]string
	// msgTS is the page's ts of each of the page's msg_ids: one message
	// has one ts everywhere.
	msgTS map[string]string
}

var docMsgID = regexp.MustCompile(`^[0-9a-hjkmnp-tv-z]{26}$`)

// TestProtocolDocExamples replays every console block of
// docs/protocol.md, in the page's order, against one qqd over TCP with
// the shipped defaults: client lines are sent as written, and every
// server line must match the next frame of that connection exactly, the
// same fields in the same order, except for the values the server makes
// up: version, msg_id and ts (each a consistent stand-in for the real
// value throughout the page) and retry_after_ms. The replay plays the
// operator for the notice and admin kick pushes, checks that a logout and
// a kicked push close the connection, and at the end that no connection
// holds a frame its transcript does not show.
func TestProtocolDocExamples(t *testing.T) {
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	daemontest.SQLite(cfg)
	s := daemontest.StartWith(t, cfg, nil)
	r := &docReplay{t: t, s: s, conns: map[string]*docConn{},
		ids: map[string]string{}, idsBack: map[string]string{}, ts: map[string]string{}, msgTS: map[string]string{}}
	blocks := docBlocks(t, protocolDoc)
	if len(blocks) == 0 {
		t.Fatalf("%s has no console blocks", protocolDoc)
	}
	for _, b := range blocks {
		r.block(b)
	}
	for name, dc := range r.conns {
		if dc.closed {
			continue
		}
		dc.c.Send(`{"type":"ping","id":"doc-end"}`)
		got, err := r.readFor(dc, `{"type":"ok"}`)
		if err == nil {
			err = docMatch(got, `{"type":"ok","id":"doc-end"}`, r)
		}
		if err != nil {
			t.Errorf("connection %s after the last example: %v", name, err)
		}
	}
}

func (r *docReplay) block(b docBlock) {
	t := r.t
	t.Helper()
	where := func(i int) string { return fmt.Sprintf("%s:%d (%s)", protocolDoc, b.line+1+i, b.conn) }
	dc := r.conns[b.conn]
	for i, line := range b.lines {
		if strings.HasPrefix(line, "$ nc ") {
			if dc != nil && !dc.closed {
				t.Fatalf("%s: %s is already connected", where(i), b.conn)
			}
			dc = &docConn{c: daemontest.DialRaw(t, r.s.Addr)}
			r.conns[b.conn] = dc
			continue
		}
		if dc == nil || dc.closed {
			t.Fatalf("%s: %s is not connected (start the block with $ nc)", where(i), b.conn)
		}
		typ, id := frameType(line)
		if !serverLine(line, typ) {
			if typ == "logout" {
				dc.logoutID = string(id)
			}
			dc.c.Send(r.substitute(line))
			continue
		}
		r.operate(dc, line, typ)
		got, err := r.readFor(dc, line)
		if err == nil {
			err = docMatch(got, line, r)
		}
		if err != nil {
			t.Fatalf("%s: %v", where(i), err)
		}
		switch _, gotID := frameType(got); {
		case typ == "ok" && dc.user == "":
			var f struct{ User string }
			json.Unmarshal([]byte(got), &f)
			dc.user = f.User
		case typ == "kicked", typ == "ok" && dc.logoutID != "" && string(gotID) == dc.logoutID:
			dc.c.ExpectClosed()
			dc.closed = true
		}
	}
}

// operate does what an operator does for a push that no request causes.
func (r *docReplay) operate(dc *docConn, line, typ string) {
	var f struct{ Reason, Message string }
	json.Unmarshal([]byte(line), &f)
	switch {
	case typ == "notice":
		r.s.Daemon.Broadcast(f.Message)
		for _, other := range r.conns {
			if other != dc && !other.closed && other.user != "" {
				other.notices = append(other.notices, f.Message)
			}
		}
	case typ == "kicked" && f.Reason == "admin":
		if dc.user == "" {
			r.t.Fatalf("replay: an admin kick of a connection that is not logged in")
		}
		r.s.Daemon.Kick(dc.user, f.Message)
	case typ == "kicked":
		r.t.Fatalf("replay: cannot cause a kicked push with reason %q", f.Reason)
	}
}

// readFor reads the frame that answers the page's line want, skipping
// broadcast notices the transcript does not show.
func (r *docReplay) readFor(dc *docConn, want string) (string, error) {
	wantType, _ := frameType(want)
	for {
		got, err := dc.c.TryRead()
		if err != nil {
			return "", fmt.Errorf("no frame where the page shows %s: %w", want, err)
		}
		typ, _ := frameType(got)
		if typ == "notice" && wantType != "notice" && len(dc.notices) > 0 {
			var f struct{ Message string }
			json.Unmarshal([]byte(got), &f)
			if f.Message == dc.notices[0] {
				dc.notices = dc.notices[1:]
				continue
			}
		}
		return got, nil
	}
}

// substitute puts the server's msg_ids and tokens in place of the page's
// in a client line.
func (r *docReplay) substitute(line string) string {
	for doc, real := range r.ids {
		line = strings.ReplaceAll(line, doc, real)
	}
	return line
}

// bind records that the page's value doc stands for the server's got, or
// reports that it stood for another one.
func bind(m, back map[string]string, field, doc, got string) error {
	if prev, ok := m[doc]; ok && prev != got {
		return fmt.Errorf("%s %s stands for %s earlier on the page, but the server sent %s", field, doc, prev, got)
	}
	if back != nil {
		if prev, ok := back[got]; ok && prev != doc {
			return fmt.Errorf("the server's %s %s is %s earlier on the page, not %s", field, got, prev, doc)
		}
		back[got] = doc
	}
	m[doc] = got
	return nil
}

// docMatch compares the frame got with the page's line want, token by
// token: the same fields in the same order with the same values, except
// for the values the server makes up.
func docMatch(got, want string, r *docReplay) error {
	gd := json.NewDecoder(strings.NewReader(got))
	gd.UseNumber()
	wd := json.NewDecoder(strings.NewReader(want))
	wd.UseNumber()
	// level is an object or array being read; key is the current field's
	// name (an array's elements inherit the array's).
	type level struct {
		object, wantKey bool
		key             string
		msgID           string // the page's msg_id of this object
	}
	var stack []level
	fail := func(format string, args ...any) error {
		return fmt.Errorf("server sent\n\t%s\nthe page shows\n\t%s\n%s", got, want, fmt.Sprintf(format, args...))
	}
	for {
		wt, werr := wd.Token()
		gt, gerr := gd.Token()
		if errors.Is(werr, io.EOF) && errors.Is(gerr, io.EOF) {
			return nil
		}
		if werr != nil {
			return fail("the page's line is not JSON: %v", werr)
		}
		if gerr != nil {
			return fail("the frame ends early or is not JSON: %v", gerr)
		}
		var top *level
		if len(stack) > 0 {
			top = &stack[len(stack)-1]
		}
		if d, ok := wt.(json.Delim); ok {
			if gt != wt {
				return fail("got %v where the page has %v", gt, wt)
			}
			switch d {
			case '{', '[':
				key := ""
				if top != nil {
					key = top.key
				}
				stack = append(stack, level{object: d == '{', wantKey: d == '{', key: key})
			default:
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].object {
					stack[len(stack)-1].wantKey = true
				}
			}
			continue
		}
		if top != nil && top.object && top.wantKey {
			if gt != wt {
				return fail("field %v where the page has %v", gt, wt)
			}
			top.key, top.wantKey = wt.(string), false
			continue
		}
		key := ""
		if top != nil {
			key = top.key
			if top.object {
				top.wantKey = true
			}
		}
		gs, ws := fmt.Sprint(gt), fmt.Sprint(wt)
		if fmt.Sprintf("%T", gt) != fmt.Sprintf("%T", wt) {
			return fail("%s is %s, the page has %s", key, gs, ws)
		}
		var err error
		switch key {
		case "version":
			if gs == "" {
				err = errors.New("empty version")
			}
		case "msg_id":
			if !docMsgID.MatchString(ws) || !docMsgID.MatchString(gs) {
				err = fmt.Errorf("msg_id %s (page) or %s (server) is not 26 characters of lowercase Crockford base32", ws, gs)
			} else {
				err = bind(r.ids, r.idsBack, "msg_id", ws, gs)
				top.msgID = ws
			}
		case "token":
			// A resume token: a stand-in, substituted in later client
			// lines like a msg_id.
			if !strings.HasPrefix(ws, "qqt1.") || !strings.HasPrefix(gs, "qqt1.") {
				err = fmt.Errorf("token %s (page) or %s (server) is not a resume token", ws, gs)
			} else {
				err = bind(r.ids, r.idsBack, "token", ws, gs)
			}
		case "token_expires":
			err = bind(r.ts, nil, "token_expires", ws, gs)
		case "since":
			// A friendship's start: a stand-in for the server's time, like ts.
			err = bind(r.ts, nil, "since", ws, gs)
		case "ts":
			// Messages may share a ts (one group commit), so the page's
			// ts values are not checked one to one, but one message has
			// one ts.
			if top.msgID != "" {
				if prev := r.msgTS[top.msgID]; prev == "" {
					r.msgTS[top.msgID] = ws
				} else if prev != ws {
					err = fmt.Errorf("msg_id %s has ts %s earlier on the page, here %s", top.msgID, prev, ws)
				}
			}
			if err == nil {
				err = bind(r.ts, nil, "ts", ws, gs)
			}
		case "retry_after_ms":
			num, _ := gt.(json.Number)
			if n, nerr := num.Int64(); nerr != nil || n < 1 {
				err = fmt.Errorf("retry_after_ms %s is not a positive integer", gs)
			}
		default:
			if gs != ws {
				err = fmt.Errorf("%s is %s, the page has %s", key, gs, ws)
			}
		}
		if err != nil {
			return fail("%v", err)
		}
	}
}
