package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chzyer/readline"
	"github.com/qqchat/qq/client"
	"github.com/qqchat/qq/client/cli"
	"github.com/qqchat/qq/daemon/protocol"
)

const chatHelp = `commands:
  /msg <user> <text>      send text to user (later plain lines go to them too)
  <text>                  send text to the last user you wrote to
  //text                  send a line that starts with "/"
  /users                  who is online
  /offline                show messages still waiting
  /history <user> [n]     the last n messages with user
  /friends                your friends and their presence, friend requests
  /add <user> [note]      ask user to be your friend
  /accept <user>          accept user's friend request (/decline refuses it)
  /cancel <user>          withdraw your friend request to user
  /remove <user>          end a friendship
  /block <user>           stop user's messages, requests and typing
  /unblock <user>         lift a block; /blocks lists them
  /status <state> [text]  online, away, busy or invisible (friends see you
                          offline), with an optional status text
  /groups                 your groups, with what you have not read
  /g <id>                 talk in group #id (also /to #id): shows what you
                          have not read of it; then plain lines go to the
                          group, and @name in them mentions name (@all:
                          everyone, for admins); /msg goes back to a user
  /history #<id> [n]      the last n entries of group #id
  /group new <name> [open|approval|invite]
                          create a group: anyone joins (open, the default),
                          admins approve requests, or admins invite
  /group join <id>        join a group, or ask to
  /group leave <id>       leave a group (/group dissolve ends yours)
  /group members <id>     who is in a group (/group info: its settings)
  /group invite <id> <user>
                          add user to a group (/group approve|reject answer
                          a request to join; /group requests lists them)
  /group kick|admin|member|transfer <id> <user>
                          remove user, make them an admin, a plain member,
                          or the owner
  /group mute <id> <user> [minutes]
                          mute user (10 minutes; /group unmute lifts it)
  /group rename <id> <name>
  /quit                   log out and leave (also Ctrl-D); with a
                          remembered login, leave and stay remembered
  /logout                 log out, forget a remembered login, and leave
  /help                   this help

When the connection to the server is lost, the chat says "reconnecting…"
and tries again with growing pauses; what you send meanwhile waits in the
outbox and goes out, once, when it says "reconnected".
`

// Chat limits.
const (
	chatRequestTimeout = 30 * time.Second
	offlinePage        = 100 // messages per offline request
	pushBatch          = 100 // pushes displayed and acked together
	seenMax            = 4096
)

// chatCmd runs the interactive chat.
func (a *app) chatCmd(ctx context.Context, g *globals, args []string) error {
	pos, err := cli.ParseFlags("qq", g.flagSet("chat"), args, 0)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageErrorf("usage: qq [chat]")
	}
	login, err := a.chatSession(ctx, g)
	if err != nil {
		return err
	}
	c := login.s
	defer c.Close()

	stdin := readline.NewCancelableStdin(a.stdin)
	cfg := &readline.Config{
		Prompt:          "> ",
		Stdin:           stdin,
		Stdout:          a.stdout,
		Stderr:          a.stderr,
		InterruptPrompt: "^C",
		EOFPrompt:       "/quit",
		FuncIsTerminal:  func() bool { return a.terminal },
	}
	if !a.terminal {
		cfg.FuncMakeRaw = func() error { return nil }
		cfg.FuncExitRaw = func() error { return nil }
	}
	// Typing notifications go out only for a person at a terminal, not for
	// lines piped in.
	var tp *typer
	if a.terminal && c.Has(protocol.FeatureTyping) {
		tp = newTyper(c, a.now)
		cfg.Listener = readline.FuncListener(func(line []rune, _ int, _ rune) ([]rune, int, bool) {
			tp.edited(line)
			return nil, 0, false
		})
	}
	rl, err := readline.NewEx(cfg)
	if err != nil {
		return &cli.Error{Code: exitOther, Msg: "cannot start the line editor: " + err.Error(), Err: err}
	}
	// rl.Close alone would wait for a pending read of stdin, and must not
	// race with readline's start-up: other goroutines only close stdin,
	// which makes Readline return io.EOF.
	defer func() {
		stdin.Close()
		rl.Close()
	}()

	s := newChat(c, g.user, rl.Stdout(), a.loc, a.now)
	s.login = login
	// A prompt set while the editor reads (by a push) is drawn at once;
	// one set between reads, at the next read. The input line is erased
	// before the prompt changes: the editor counts the rows to erase from
	// the prompt's width, and a longer or shorter prompt can wrap the line
	// onto more or fewer rows than are on the screen.
	s.setPrompt = func(p string) {
		if !rl.Terminal.IsReading() {
			rl.SetPrompt(p)
			return
		}
		rl.Clean()
		rl.SetPrompt(p)
		rl.Refresh()
	}
	s.typer = tp
	for _, n := range login.notes {
		if n != "" {
			s.println(n)
		}
	}
	// The session fetches the pending messages and delivers them on
	// Messages, with the pushes.
	if pending := c.Pending(); pending == 0 {
		s.println("no messages waiting")
	} else {
		s.println(plural(pending, "message") + " waiting")
	}
	s.socialSummary(ctx)
	s.groupSummary(ctx)
	s.println("type /help for help")

	pushDone := make(chan struct{})
	go func() {
		defer close(pushDone)
		s.pushes(ctx)
	}()
	eventsDone := make(chan struct{})
	go func() {
		defer close(eventsDone)
		s.events(ctx)
	}()
	// When the connection ends, interrupt the prompt.
	stopWatch := make(chan struct{})
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		select {
		case <-pushDone:
			stdin.Close()
		case <-ctx.Done():
			stdin.Close()
		case <-stopWatch:
		}
	}()
	if tp != nil {
		go tp.run(ctx)
	}
	defer func() {
		close(stopWatch)
		<-watchDone
		if tp != nil {
			tp.close()
		}
		c.Close()
		<-pushDone
		<-eventsDone
	}()

	for {
		line, err := rl.Readline()
		if errors.Is(err, readline.ErrInterrupt) {
			if line == "" {
				return s.quit(ctx)
			}
			continue
		}
		select {
		case <-c.Done():
			return s.ended()
		default:
		}
		if ctx.Err() != nil || errors.Is(err, io.EOF) {
			return s.quit(ctx)
		}
		if err != nil {
			return &cli.Error{Code: exitOther, Msg: "reading input: " + err.Error(), Err: err}
		}
		if s.handle(ctx, line) {
			return s.quit(ctx)
		}
	}
}

// chat is the state of an interactive session. Its methods print complete
// lines with one Write each, so that a line editor can redraw its input line
// below them.
type chat struct {
	c         *client.Session
	login     *chatLogin
	me        string
	loc       *time.Location
	now       func() time.Time
	setPrompt func(string)
	typer     *typer // nil when the chat sends no typing notifications

	outMu sync.Mutex
	out   io.Writer

	promptMu sync.Mutex // serializes updatePrompt

	// groupMu orders the display of group entries: pushed ones against a
	// catch-up (see groups.go). It is taken before mu.
	groupMu sync.Mutex

	mu     sync.Mutex
	peer   string          // last user written to, or first user who wrote
	seen   idSet           // msg_ids already displayed
	typing map[string]bool // users typing to this one
	group  string          // the group plain lines go to; "" when they go to peer
	groups map[string]*groupState
	down   bool // the connection is lost: the session reconnects
	logout bool // /logout: log out and forget a remembered login
}

func newChat(c *client.Session, me string, out io.Writer, loc *time.Location, now func() time.Time) *chat {
	return &chat{c: c, login: &chatLogin{s: c}, me: me, out: out, loc: loc, now: now, setPrompt: func(string) {}, seen: newIDSet(seenMax),
		typing: make(map[string]bool), groups: make(map[string]*groupState)}
}

func (s *chat) print(text string) {
	if text == "" {
		return
	}
	s.outMu.Lock()
	defer s.outMu.Unlock()
	io.WriteString(s.out, text)
}

func (s *chat) println(line string) { s.print(line + "\n") }

// display prints the messages not displayed before. It returns the ids of
// all of them, to be acked. When no peer is set yet, the first user who
// wrote becomes the peer, so a plain line answers them.
func (s *chat) display(msgs []protocol.Message) []string {
	now := s.now()
	var b strings.Builder
	s.mu.Lock()
	from := ""
	stoppedTyping := false
	for _, m := range msgs {
		if s.seen.add(m.ID) {
			b.WriteString(formatMessageFor(m, s.me, now, s.loc))
		}
		if from == "" && m.From != s.me {
			from = m.From
		}
		// A message ends its sender's typing indicator.
		if s.typing[m.From] {
			delete(s.typing, m.From)
			stoppedTyping = true
		}
	}
	noPeer := s.peer == "" && s.group == ""
	s.mu.Unlock()
	s.print(b.String())
	switch {
	case noPeer && from != "":
		s.setPeer(from)
	case stoppedTyping:
		s.updatePrompt()
	}
	return msgIDs(msgs)
}

// showOffline displays and acks every pending message, page by page.
func (s *chat) showOffline(ctx context.Context, sayNone bool) {
	total := 0
	for {
		rctx, cancel := context.WithTimeout(ctx, chatRequestTimeout)
		msgs, more, err := s.c.Offline(rctx, offlinePage)
		if err == nil && len(msgs) > 0 {
			err = s.c.Ack(rctx, s.display(msgs)...)
		}
		cancel()
		if err != nil {
			s.println("could not fetch waiting messages: " + describe(err, ""))
			return
		}
		total += len(msgs)
		if !more || len(msgs) == 0 {
			break
		}
	}
	if total == 0 && sayNone {
		s.println("no messages waiting")
	}
}

// pushes displays and acks pushed messages until Messages is closed.
func (s *chat) pushes(ctx context.Context) {
	msgs := s.c.Messages()
	for m := range msgs {
		batch := []protocol.Message{m}
	drain:
		for len(batch) < pushBatch {
			select {
			case m, ok := <-msgs:
				if !ok {
					break drain
				}
				batch = append(batch, m)
			default:
				break drain
			}
		}
		ids := s.display(batch)
		rctx, cancel := context.WithTimeout(ctx, chatRequestTimeout)
		err := s.c.Ack(rctx, ids...)
		cancel()
		if err != nil && ctx.Err() == nil {
			select {
			case <-s.c.Done(): // the end is reported by the chat loop
			default:
				s.println("could not mark messages read: " + describe(err, ""))
			}
		}
	}
}

// quit leaves the chat, after the typing stop that may be due and the
// sends still in the outbox, for a moment if connected: it logs out,
// unless the login is remembered (a logout would revoke its token) and
// the user did not ask for /logout.
func (s *chat) quit(ctx context.Context) error {
	if s.typer != nil {
		s.typer.close()
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), logoutTimeout)
	defer cancel()
	if s.c.Connected() {
		s.c.Flush(rctx)
	}
	s.showUnsent()
	if s.login.remember && !s.logout {
		s.c.Close()
		s.println("bye (still remembered: /logout forgets the login)")
		return nil
	}
	s.c.Logout(rctx)
	if s.logout {
		s.println("logged out")
		if note := s.login.forget(); note != "" {
			s.println(note)
		}
	}
	s.println("bye")
	return nil
}

// handle runs one input line and reports whether the user wants to quit.
func (s *chat) handle(ctx context.Context, line string) (quit bool) {
	if strings.TrimSpace(line) == "" {
		return false
	}
	if strings.HasPrefix(line, "//") {
		s.sendToPeer(ctx, line[1:])
		return false
	}
	if !strings.HasPrefix(line, "/") {
		s.sendToPeer(ctx, line)
		return false
	}
	cmd, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
	rest = strings.TrimLeft(rest, " \t")
	switch cmd {
	case "/msg", "/m":
		to, text, _ := strings.Cut(rest, " ")
		text = strings.TrimLeft(text, " \t")
		if to == "" || strings.TrimSpace(text) == "" {
			s.println("usage: /msg <user> <text>")
			return false
		}
		s.send(ctx, to, text)
	case "/users", "/who":
		s.users(ctx)
	case "/offline":
		s.showOffline(ctx, true)
	case "/history":
		s.history(ctx, strings.Fields(rest))
	case "/groups":
		s.groupList(ctx)
	case "/group":
		s.groupCmd(ctx, rest)
	case "/g":
		s.enterGroup(ctx, strings.TrimSpace(rest))
	case "/to":
		s.to(ctx, strings.TrimSpace(rest))
	case "/friends":
		s.friends(ctx)
	case "/add":
		s.add(ctx, rest)
	case "/accept", "/decline", "/cancel", "/remove", "/block", "/unblock":
		s.friendCmd(ctx, cmd[1:], rest)
	case "/blocks":
		s.blocks(ctx)
	case "/status":
		s.status(ctx, rest)
	case "/quit", "/exit", "/q":
		return true
	case "/logout":
		s.logout = true
		return true
	case "/help", "/?":
		s.print(chatHelp)
	default:
		s.println("unknown command " + sanitize(cmd) + "; type /help for help")
	}
	return false
}

func (s *chat) sendToPeer(ctx context.Context, text string) {
	s.mu.Lock()
	to, group := s.peer, s.group
	s.mu.Unlock()
	if group != "" {
		s.groupSend(ctx, group, text)
		return
	}
	if to == "" {
		s.println("no one to send to yet: start with /msg <user> <text>")
		return
	}
	s.send(ctx, to, text)
}

// send sends text to the user to and shows it as stored. Without a
// connection the message waits in the outbox, and is shown when an
// EventSendDone reports it stored.
func (s *chat) send(ctx context.Context, to, text string) {
	if !s.c.Connected() {
		if _, err := s.c.Enqueue(to, text, ""); err != nil {
			s.println(describe(err, to))
			return
		}
		s.setPeer(to)
		s.println(outboxLine)
		return
	}
	rctx, cancel := context.WithTimeout(ctx, chatRequestTimeout)
	defer cancel()
	r, err := s.c.Send(rctx, to, text)
	if err == nil || !errors.Is(err, &protocol.Error{Code: protocol.CodeUnknownUser}) {
		s.setPeer(to)
	}
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		s.println(noAnswerLine)
		return
	}
	if err != nil {
		s.println(describe(err, to))
		return
	}
	s.showSent(to, text, r)
}

// Lines about the outbox.
const (
	outboxLine   = "(not connected: the message waits in the outbox and goes out once reconnected)"
	noAnswerLine = "(no answer from the server yet: the message stays in the outbox, goes out once, and shows when it is stored)"
)

// showSent shows the message this user sent to to, as stored, unless it
// was shown already (a message to oneself is pushed too).
func (s *chat) showSent(to, text string, r client.SendResult) {
	s.mu.Lock()
	first := s.seen.add(r.MsgID)
	s.mu.Unlock()
	if !first {
		return
	}
	body := text
	if r.Body != "" {
		body = r.Body
	}
	line := formatMessageFor(protocol.Message{ID: r.MsgID, From: s.me, To: to, Body: body, TS: r.TS}, s.me, s.now(), s.loc)
	if r.Status == protocol.StatusQueued {
		line += "(" + sanitize(to) + " is offline; the message will wait)\n"
	}
	if r.Body != "" {
		line += "(a filter changed your message)\n"
	}
	s.print(line)
}

func (s *chat) setPeer(to string) {
	s.mu.Lock()
	changed := s.peer != to || s.group != ""
	s.peer, s.group = to, ""
	s.mu.Unlock()
	if !changed {
		return
	}
	if s.typer != nil {
		s.typer.setPeer(to)
	}
	s.updatePrompt()
}

// to runs /to <user> or /to #<group>: where plain lines go.
func (s *chat) to(ctx context.Context, arg string) {
	switch {
	case strings.HasPrefix(arg, "#"):
		s.enterGroup(ctx, arg)
	case arg == "" || strings.ContainsAny(arg, " \t"):
		s.println("usage: /to <user> or /to #<group id>")
	default:
		s.setPeer(arg)
		s.println("plain lines now go to " + sanitize(arg))
	}
}

func (s *chat) users(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, chatRequestTimeout)
	defer cancel()
	users, err := s.c.Users(rctx)
	if err != nil {
		s.println(describe(err, ""))
		return
	}
	for i := range users {
		users[i] = sanitize(users[i])
	}
	s.println("online: " + strings.Join(users, ", "))
}

func (s *chat) history(ctx context.Context, args []string) {
	if len(args) < 1 || len(args) > 2 {
		s.println("usage: /history <user> [n]")
		return
	}
	with, n := args[0], 0
	if len(args) == 2 {
		v, err := strconv.Atoi(args[1])
		if err != nil || v < 1 {
			s.println("usage: /history <user> [n]  (n is a positive number)")
			return
		}
		n = v
	}
	if strings.HasPrefix(with, "#") {
		id, ok := parseGroupID(with)
		if !ok {
			s.println("usage: /history #<group id> [n]")
			return
		}
		s.groupHistory(ctx, id, n)
		return
	}
	rctx, cancel := context.WithTimeout(ctx, chatRequestTimeout)
	defer cancel()
	msgs, more, err := s.c.History(rctx, with, "", n)
	if err != nil {
		s.println(describe(err, with))
		return
	}
	if len(msgs) == 0 {
		s.println("no messages with " + sanitize(with))
		return
	}
	now := s.now()
	var b strings.Builder
	if more {
		fmt.Fprintf(&b, "(older messages exist: qq history %s --before %s)\n", sanitize(with), sanitize(msgs[0].ID))
	}
	for _, m := range msgs {
		b.WriteString(formatMessageFor(m, s.me, now, s.loc))
	}
	s.print(b.String())
}

// idSet remembers the last max ids added.
type idSet struct {
	ids  map[string]struct{}
	ring []string
	next int
}

func newIDSet(max int) idSet {
	return idSet{ids: make(map[string]struct{}, max), ring: make([]string, max)}
}

// add adds id and reports whether it was new.
func (s *idSet) add(id string) bool {
	if _, ok := s.ids[id]; ok {
		return false
	}
	if old := s.ring[s.next]; old != "" {
		delete(s.ids, old)
	}
	s.ring[s.next] = id
	s.next = (s.next + 1) % len(s.ring)
	s.ids[id] = struct{}{}
	return true
}
