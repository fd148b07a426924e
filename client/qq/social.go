package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/qqchat/qq/client"
	"github.com/qqchat/qq/client/cli"
	"github.com/qqchat/qq/daemon/protocol"
)

// This file holds qq's side of qqd's friends, presence and typing
// extensions (docs/protocol.md, "Friends, presence and typing"): the
// chat's commands and push lines, the typing notifications it sends, and
// the one-shot commands.

// Typing notifications.
const (
	// typingRefresh is how often a start is repeated while the user keeps
	// editing a line: the server ends a start by itself 6 s after it.
	typingRefresh = 4 * time.Second
	// typingTimeout bounds one typing request.
	typingTimeout = 5 * time.Second
)

// settableState reports whether state is one a user may set.
func settableState(state string) bool {
	switch state {
	case "online", "away", "busy", "invisible":
		return true
	}
	return false
}

// unsupported is the text for a server whose hello lacks feature.
func unsupported(feature string) string {
	return "this server does not support " + feature + " (its hello does not list the feature)"
}

// friender makes the friends requests: a *client.Client in one-shot
// commands, the chat's *client.Session.
type friender interface {
	RequestFriend(ctx context.Context, to, note string) (bool, error)
	AcceptFriend(ctx context.Context, user string) error
	DeclineFriend(ctx context.Context, user string) error
	CancelFriendRequest(ctx context.Context, to string) error
	RemoveFriend(ctx context.Context, user string) error
	Block(ctx context.Context, user string) error
	Unblock(ctx context.Context, user string) error
	Blocks(ctx context.Context) ([]string, error)
}

var (
	_ friender = (*client.Client)(nil)
	_ friender = (*client.Session)(nil)
)

// friendAction is one of the requests about a single other user that
// answer only ok: accept, decline, cancel, remove, block, unblock.
type friendAction struct {
	call func(friender, context.Context, string) error
	done string // the line after the ok; %s is the user
	key  string // the --json result's key: {"<key>": true, "user": ...}
}

// friendActionFor returns the action a command word names: accept,
// decline, cancel, remove, block or unblock.
func friendActionFor(name string) friendAction {
	switch name {
	case "accept":
		return friendAction{friender.AcceptFriend, "accepted %s's friend request", "accepted"}
	case "decline":
		return friendAction{friender.DeclineFriend, "declined %s's friend request", "declined"}
	case "cancel":
		return friendAction{friender.CancelFriendRequest, "withdrew your friend request to %s", "cancelled"}
	case "remove":
		return friendAction{friender.RemoveFriend, "%s is no longer your friend", "removed"}
	case "block":
		return friendAction{friender.Block, "blocked %s: their messages, friend requests and typing no longer reach you", "blocked"}
	case "unblock":
		return friendAction{friender.Unblock, "unblocked %s", "unblocked"}
	}
	panic("qq: no friend action " + name)
}

// requestFriend asks to to be friends. When the server answers blocked,
// it checks whether the user is the one who blocks, which the server's
// message does not say, and then returns the text to show instead; cmd is
// as in requestLine.
func requestFriend(ctx context.Context, c friender, to, note, cmd string) (friends bool, youBlock string, err error) {
	friends, err = c.RequestFriend(ctx, to, note)
	if errors.Is(err, &protocol.Error{Code: protocol.CodeBlocked}) {
		if users, berr := c.Blocks(ctx); berr == nil && slices.Contains(users, to) {
			youBlock = "you block " + sanitize(to) + ": unblock them first (" + cmd + "unblock " + sanitize(to) + ")"
		}
	}
	return friends, youBlock, err
}

// addedLine is the line for the ok to a friend request.
func addedLine(to string, friends bool) string {
	if friends {
		return "you and " + sanitize(to) + " are friends"
	}
	return "friend request sent to " + sanitize(to)
}

// statusLine is the line after the user set their presence.
func statusLine(state, text string) string {
	if state == "invisible" {
		return "you are invisible: your friends see you offline"
	}
	return "you are " + presenceText(state, text)
}

// needs reports whether the server has feature, and says so when not.
func (s *chat) needs(feature string) bool {
	if s.c.Has(feature) {
		return true
	}
	s.println(unsupported(feature))
	return false
}

// socialSummary shows, at login, which friends are online and the friend
// requests waiting for an answer (requests made while the user was away
// were not pushed).
func (s *chat) socialSummary(ctx context.Context) {
	if !s.c.Has(protocol.FeatureFriends) {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, chatRequestTimeout)
	defer cancel()
	fl, err := s.c.Friends(rctx)
	if err != nil {
		s.println("could not fetch your friends: " + describe(err, ""))
		return
	}
	var b strings.Builder
	var online []string
	for _, f := range fl.Friends {
		if f.Presence != "offline" {
			online = append(online, presenceMark(f.Presence)+" "+sanitize(f.User))
		}
	}
	if len(online) > 0 {
		b.WriteString("friends online: " + strings.Join(online, ", ") + "\n")
	}
	for _, r := range fl.Incoming {
		b.WriteString(requestLine(r.From, r.Note, "/") + "\n")
	}
	s.print(b.String())
}

// events shows the pushes other than messages until Events is closed:
// one line each, except typing, which shows in the prompt. Group entries
// shown together are acked together.
func (s *chat) events(ctx context.Context) {
	evs := s.c.Events()
	for e := range evs {
		acks := make(map[string]int64)
		s.event(ctx, e, acks)
	drain:
		for n := 1; n < pushBatch; n++ {
			select {
			case e, ok := <-evs:
				if !ok {
					break drain
				}
				s.event(ctx, e, acks)
			default:
				break drain
			}
		}
		s.ackGroups(ctx, acks)
	}
}

// event shows one push or event of the session; group entries it may
// ack go into acks.
func (s *chat) event(ctx context.Context, e client.Event, acks map[string]int64) {
	if s.sessionEvent(e) {
		return
	}
	switch e.Type {
	case protocol.TypeTyping:
		who := e.User
		if e.Group != "" {
			who += "#" + e.Group // no user name has a "#"
		}
		s.setTyping(who, e.State == "start")
		return
	case protocol.TypePresence:
		if e.State == "offline" {
			s.setTyping(e.User, false)
		}
	case protocol.TypeGroupEntry, protocol.TypeGroupJoinRequest:
		s.groupEvent(ctx, e, acks)
		return
	}
	if line := eventLine(e); line != "" {
		s.println(line)
	}
}

// setTyping records whether user (or "user#group": user in that group)
// is typing to this user and updates the prompt if that changed.
func (s *chat) setTyping(user string, typing bool) {
	s.mu.Lock()
	changed := s.typing[user] != typing
	if typing {
		s.typing[user] = true
	} else {
		delete(s.typing, user)
	}
	s.mu.Unlock()
	if changed {
		s.updatePrompt()
	}
}

// updatePrompt sets the prompt: who is typing to the user, if anyone, and
// whom a plain line goes to. The line editor redraws its input line with
// it, which makes the typing indicator transient: it is gone from the
// screen when the typing ends.
func (s *chat) updatePrompt() {
	s.promptMu.Lock()
	defer s.promptMu.Unlock()
	s.mu.Lock()
	p := s.promptLocked()
	s.mu.Unlock()
	s.setPrompt(p)
}

// promptLocked returns the prompt. s.mu is held.
func (s *chat) promptLocked() string {
	p := "> "
	switch {
	case s.group != "":
		p = "to " + s.label(s.group) + "> "
	case s.peer != "":
		p = "to " + sanitize(s.peer) + "> "
	}
	if len(s.typing) > 0 {
		names := make([]string, 0, len(s.typing))
		for k := range s.typing {
			// A group's typist is "user#group", named with the group's
			// label as it is now (a rename keeps the key).
			if u, g, ok := strings.Cut(k, "#"); ok {
				names = append(names, sanitize(u)+" in "+s.label(g))
			} else {
				names = append(names, sanitize(k))
			}
		}
		slices.Sort(names)
		verb := " is"
		if len(names) > 1 {
			verb = " are"
		}
		p = "(" + strings.Join(names, ", ") + verb + " typing…) " + p
	}
	if s.down {
		p = "(reconnecting…) " + p
	}
	return p
}

// friendCmd runs /accept, /decline, /cancel, /remove, /block or /unblock.
func (s *chat) friendCmd(ctx context.Context, name, rest string) {
	act := friendActionFor(name)
	user := strings.TrimSpace(rest)
	if user == "" || strings.ContainsAny(user, " \t") {
		s.println("usage: /" + name + " <user>")
		return
	}
	if !s.needs(protocol.FeatureFriends) {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, chatRequestTimeout)
	defer cancel()
	if err := act.call(s.c, rctx, user); err != nil {
		s.println(describe(err, user))
		return
	}
	s.println(fmt.Sprintf(act.done, sanitize(user)))
}

// add runs /add <user> [note].
func (s *chat) add(ctx context.Context, rest string) {
	to, note, _ := strings.Cut(rest, " ")
	note = strings.TrimSpace(note)
	if to == "" {
		s.println("usage: /add <user> [note]")
		return
	}
	if !s.needs(protocol.FeatureFriends) {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, chatRequestTimeout)
	defer cancel()
	friends, youBlock, err := requestFriend(rctx, s.c, to, note, "/")
	switch {
	case youBlock != "":
		s.println(youBlock)
	case err != nil:
		s.println(describe(err, to))
	default:
		s.println(addedLine(to, friends))
	}
}

// friends runs /friends.
func (s *chat) friends(ctx context.Context) {
	if !s.needs(protocol.FeatureFriends) {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, chatRequestTimeout)
	defer cancel()
	fl, err := s.c.Friends(rctx)
	if err != nil {
		s.println(describe(err, ""))
		return
	}
	s.print(formatFriendList(fl, "/"))
}

// blocks runs /blocks.
func (s *chat) blocks(ctx context.Context) {
	if !s.needs(protocol.FeatureFriends) {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, chatRequestTimeout)
	defer cancel()
	users, err := s.c.Blocks(rctx)
	if err != nil {
		s.println(describe(err, ""))
		return
	}
	if len(users) == 0 {
		s.println("you block no one")
		return
	}
	for i := range users {
		users[i] = sanitize(users[i])
	}
	s.println("you block: " + strings.Join(users, ", "))
}

// status runs /status <state> [text].
func (s *chat) status(ctx context.Context, rest string) {
	state, text, _ := strings.Cut(rest, " ")
	text = strings.TrimSpace(text)
	if !settableState(state) {
		s.println("usage: /status online|away|busy|invisible [text]")
		return
	}
	if !s.needs(protocol.FeaturePresence) {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, chatRequestTimeout)
	defer cancel()
	if err := s.c.SetPresence(rctx, state, text); err != nil {
		s.println(describe(err, ""))
		return
	}
	s.println(statusLine(state, text))
}

// typer sends typing notifications for the line being edited: a start to
// the peer when a plain line (not a command) gets its first character,
// again every typingRefresh while it is being edited, and a stop when it
// is sent or cleared, or the chat ends. The line editor only records what
// it wants (edited); the requests go out from run, one at a time and in
// order, and the latest wish wins, so a burst of keys costs at most one
// request and the editor never waits for the network.
type typer struct {
	c        *client.Session
	now      func() time.Time
	kick     chan struct{}
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once

	mu   sync.Mutex
	peer string // where a plain line goes: a user, or "#" and a group id
	want string // whom the line being edited goes to; "" when none

	sent string    // run's own: whom the last start went to, "" after a stop
	at   time.Time // run's own: when
}

func newTyper(c *client.Session, now func() time.Time) *typer {
	return &typer{c: c, now: now, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

func (t *typer) setPeer(peer string) {
	t.mu.Lock()
	t.peer = peer
	t.mu.Unlock()
}

// edited is called by the line editor with the input line after each key.
func (t *typer) edited(line []rune) {
	plain := len(line) > 0 && (line[0] != '/' || len(line) > 1 && line[1] == '/')
	t.mu.Lock()
	t.want = ""
	if plain {
		t.want = t.peer
	}
	t.mu.Unlock()
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// run sends the notifications until close is called or the connection
// ends.
func (t *typer) run(ctx context.Context) {
	defer close(t.done)
	for {
		select {
		case <-t.kick:
			t.mu.Lock()
			want := t.want
			t.mu.Unlock()
			t.sync(ctx, want)
		case <-t.stop:
			t.sync(context.WithoutCancel(ctx), "")
			return
		case <-t.c.Done():
			return
		}
	}
}

// sync sends what it takes to be typing to want ("": to no one). A failed
// notification is not worth a line on the screen: the server ends a start
// by itself.
func (t *typer) sync(ctx context.Context, want string) {
	send := func(to string, typing bool) {
		rctx, cancel := context.WithTimeout(ctx, typingTimeout)
		defer cancel()
		if group, ok := strings.CutPrefix(to, "#"); ok {
			t.c.GroupTyping(rctx, group, typing)
		} else {
			t.c.Typing(rctx, to, typing)
		}
	}
	if t.sent != "" && t.sent != want {
		send(t.sent, false)
		t.sent = ""
	}
	if want != "" && (want != t.sent || t.now().Sub(t.at) >= typingRefresh) {
		send(want, true)
		t.sent, t.at = want, t.now()
	}
}

// close ends run, after a stop if a start is outstanding, and waits for
// it. run must have been started. It may be called more than once.
func (t *typer) close() {
	t.stopOnce.Do(func() { close(t.stop) })
	<-t.done
}

// needs fails a one-shot command when the server lacks feature, as the
// server would (unknown_type, exit 4).
func needs(c *client.Client, feature string) error {
	if c.Has(feature) {
		return nil
	}
	msg := unsupported(feature)
	return &cli.Error{Code: exitRefused, Msg: msg, Err: protocol.Errorf(protocol.CodeUnknownType, msg)}
}

// socialLogin logs in for a one-shot command of the friends extension.
// The caller must finish c.
func (a *app) socialLogin(ctx context.Context, g *globals) (*client.Client, error) {
	c, _, err := a.login(ctx, g, client.Options{})
	if err != nil {
		return nil, err
	}
	if err := needs(c, protocol.FeatureFriends); err != nil {
		finish(ctx, c)
		return nil, err
	}
	return c, nil
}

func (a *app) friendsCmd(ctx context.Context, g *globals, args []string) error {
	pos, err := cli.ParseFlags("qq", g.flagSet("friends"), args, 0)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageErrorf("usage: qq friends")
	}
	c, err := a.socialLogin(ctx, g)
	if err != nil {
		return err
	}
	defer finish(ctx, c)
	fctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	fl, err := c.Friends(fctx)
	if err != nil {
		return failed(err, "")
	}
	if g.json {
		return a.printJSON(struct {
			Friends  []protocol.FriendEntry   `json:"friends"`
			Incoming []protocol.FriendRequest `json:"incoming"`
			Outgoing []protocol.FriendRequest `json:"outgoing"`
		}{fl.Friends, fl.Incoming, fl.Outgoing})
	}
	fmt.Fprint(a.stdout, formatFriendList(fl, "qq "))
	return nil
}

func (a *app) addCmd(ctx context.Context, g *globals, args []string) error {
	pos, err := cli.ParseFlags("qq", g.flagSet("add"), args, 1)
	if err != nil {
		return err
	}
	if len(pos) < 1 {
		return usageErrorf("usage: qq add <user> [note...]")
	}
	to, note := pos[0], strings.Join(pos[1:], " ")
	c, err := a.socialLogin(ctx, g)
	if err != nil {
		return err
	}
	defer finish(ctx, c)
	actx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	friends, youBlock, err := requestFriend(actx, c, to, note, "qq ")
	if youBlock != "" {
		return &cli.Error{Code: exitRefused, Msg: youBlock, Err: err}
	}
	if err != nil {
		return failed(err, to)
	}
	if g.json {
		status := "pending"
		if friends {
			status = "friends"
		}
		return a.printJSON(map[string]string{"user": to, "status": status})
	}
	fmt.Fprintln(a.stdout, addedLine(to, friends))
	return nil
}

// friendActionCmd runs qq accept, decline, cancel, remove, block or
// unblock.
func (a *app) friendActionCmd(ctx context.Context, g *globals, name string, args []string) error {
	act := friendActionFor(name)
	pos, err := cli.ParseFlags("qq", g.flagSet(name), args, 0)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErrorf("usage: qq %s <user>", name)
	}
	user := pos[0]
	c, err := a.socialLogin(ctx, g)
	if err != nil {
		return err
	}
	defer finish(ctx, c)
	actx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	if err := act.call(c, actx, user); err != nil {
		return failed(err, user)
	}
	if g.json {
		return a.printJSON(map[string]any{act.key: true, "user": user})
	}
	fmt.Fprintf(a.stdout, act.done+"\n", sanitize(user))
	return nil
}

func (a *app) blocksCmd(ctx context.Context, g *globals, args []string) error {
	pos, err := cli.ParseFlags("qq", g.flagSet("blocks"), args, 0)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageErrorf("usage: qq blocks")
	}
	c, err := a.socialLogin(ctx, g)
	if err != nil {
		return err
	}
	defer finish(ctx, c)
	bctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	users, err := c.Blocks(bctx)
	if err != nil {
		return failed(err, "")
	}
	if g.json {
		return a.printJSON(map[string][]string{"users": users})
	}
	for _, u := range users {
		fmt.Fprintln(a.stdout, sanitize(u))
	}
	return nil
}
