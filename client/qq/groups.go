package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/qqchat/qq/client"
	"github.com/qqchat/qq/client/cli"
	"github.com/qqchat/qq/daemon/protocol"
)

// This file holds qq's side of qqd's groups extension (docs/protocol.md,
// "Groups"): the chat's /group commands and group conversations, the
// lines of group entries, the read cursors the chat moves, and the
// one-shot commands groups and group-send.
//
// The chat shows every group entry pushed to it, of every group, as a
// line ("[#12 crew] alice: hi"), and acks it when it follows the read
// cursor the chat knows of (so an entry shown after a gap, such as
// entries written while the user was away, does not mark the gap read).
// Entering a group conversation (/g 12) catches up from the cursor with
// group_sync, shows what it finds and acks it: the unread counts of
// /groups are then those of the entries not shown.

// Group conversations.
const (
	groupSyncPage      = 100 // entries per group_sync while catching up
	groupCatchUpMax    = 500 // entries shown at most by one /g; the rest stays unread
	groupMembersShown  = 1000
	defaultMuteMinutes = 10
)

// groupState is what the chat knows of a group it has seen.
type groupState struct {
	name  string
	read  int64 // the read cursor as far as this chat knows; -1: unknown
	shown int64 // the highest seq shown, to skip a push already shown by a catch-up
	gone  bool  // this user is no longer a member
}

// parseGroupID reads a group id as people type it: "12" or "#12".
func parseGroupID(s string) (string, bool) {
	s = strings.TrimPrefix(s, "#")
	if s == "" || len(s) > 19 {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return "", false
		}
	}
	return s, true
}

// groupLabel is "#12 crew", or "#12" when the name is not known.
func groupLabel(id, name string) string {
	if name == "" {
		return "#" + sanitize(id)
	}
	return "#" + sanitize(id) + " " + sanitize(name)
}

// mentionsIn returns the users a line mentions: its words that start
// with "@" (after an opening bracket or quote) and name a user (or
// "all"), in order, once each. Trailing punctuation is not part of the
// name, and names are lowered.
func mentionsIn(text string) []string {
	var out []string
	for _, w := range strings.Fields(text) {
		name, ok := strings.CutPrefix(strings.TrimLeft(w, "([{'\""), "@")
		if !ok {
			continue
		}
		name = strings.ToLower(strings.TrimRight(name, ",.:;!?)'\""))
		if (name == client.MentionAll || protocol.ValidUser(name)) && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

// entryText is what an entry says, after its group label.
func entryText(e *protocol.GroupEntry, now time.Time, loc *time.Location) string {
	actor, target := sanitize(e.Actor), sanitize(e.Target)
	switch e.Kind {
	case "msg":
		return sanitize(e.From) + ": " + indentBody(e.Body)
	case "created":
		return actor + " created the group " + sanitize(e.Name)
	case "joined":
		if e.Actor == "" || e.Actor == e.Target {
			return target + " joined"
		}
		return target + " joined (added by " + actor + ")"
	case "left":
		return target + " left"
	case "kicked":
		return actor + " removed " + target
	case "role":
		if e.Role == client.RoleAdmin {
			return actor + " made " + target + " an admin"
		}
		return actor + " made " + target + " a plain member"
	case "owner":
		return actor + " made " + target + " the owner"
	case "renamed":
		return actor + " renamed the group to " + sanitize(e.Name)
	case "muted":
		if e.Until == 0 {
			return actor + " unmuted " + target
		}
		return actor + " muted " + target + " until " + timeLabel(e.Until, now, loc)
	case "mute_all":
		if e.On {
			return actor + " muted everyone but the admins"
		}
		return actor + " lifted the mute on everyone"
	case "settings":
		var set []string
		if e.Policy != "" {
			set = append(set, "the join policy to "+sanitize(e.Policy))
		}
		if e.History != "" {
			set = append(set, "the history to "+sanitize(e.History))
		}
		return actor + " set " + strings.Join(set, " and ")
	case "dissolved":
		return actor + " dissolved the group"
	}
	return "(" + sanitize(e.Kind) + ")"
}

// formatEntry renders an entry as "[15:04] [#12 crew] alice: hi\n".
func formatEntry(e *protocol.GroupEntry, label string, now time.Time, loc *time.Location) string {
	return "[" + timeLabel(e.TS, now, loc) + "] [" + label + "] " + entryText(e, now, loc) + "\n"
}

// indentBody makes a message body safe to print, with its continuation
// lines indented.
func indentBody(body string) string {
	lines := strings.Split(body, "\n")
	for i := range lines {
		lines[i] = sanitize(lines[i])
	}
	return strings.Join(lines, "\n    ")
}

// describeGroup is describe for a request about group id: the group
// errors say which group.
func describeGroup(err error, id, name string) string {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		switch pe.Code {
		case protocol.CodeNoGroup, protocol.CodeNotMember, protocol.CodeNotAllowed, protocol.CodeMuted,
			protocol.CodeGroupFull, protocol.CodeAlreadyMember, protocol.CodeNoRequest, protocol.CodeUnknownUser:
			return "#" + sanitize(id) + ": " + describe(err, name)
		}
	}
	return describe(err, name)
}

// formatGroupList renders the groups listing, for the chat or a shell.
func formatGroupList(gl []protocol.GroupListing, inChat bool) string {
	if len(gl) == 0 {
		s := "you are in no group: create one with /group new <name>, or join one with /group join <id>"
		if !inChat {
			s += " (in the chat)"
		}
		return s + "\n"
	}
	var b strings.Builder
	b.WriteString("your groups:\n")
	for _, g := range gl {
		b.WriteString("  " + groupLabel(g.Group, g.Name) + " (" + sanitize(g.Role) + ", " + plural(int64(g.Members), "member") + "): " + unreadText(g) + "\n")
	}
	if inChat {
		b.WriteString("(/g <id> talks in a group and shows what you have not read)\n")
	}
	return b.String()
}

// unreadText is "3 unread, 1 mentioning you", or "nothing unread".
func unreadText(g protocol.GroupListing) string {
	if g.Unread == 0 {
		return "nothing unread"
	}
	s := strconv.FormatInt(g.Unread, 10) + " unread"
	if g.Mentions > 0 {
		s += ", " + strconv.FormatInt(g.Mentions, 10) + " mentioning you"
	}
	return s
}

// groupOf returns the chat's state of group id, creating it unknown.
// s.mu is held.
func (s *chat) groupOf(id string) *groupState {
	st := s.groups[id]
	if st == nil {
		st = &groupState{read: -1}
		s.groups[id] = st
	}
	return st
}

// label returns group id's label. s.mu is held.
func (s *chat) label(id string) string {
	name := ""
	if st := s.groups[id]; st != nil {
		name = st.name
	}
	return groupLabel(id, name)
}

// refreshGroups fetches the groups listing and learns names and cursors
// from it.
func (s *chat) refreshGroups(ctx context.Context) ([]protocol.GroupListing, error) {
	rctx, cancel := context.WithTimeout(ctx, chatRequestTimeout)
	defer cancel()
	gl, err := s.c.Groups(rctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range gl {
		st := s.groupOf(g.Group)
		st.name, st.gone = g.Name, false
		st.read = max(st.read, g.ReadSeq)
	}
	return gl, nil
}

// groupSummary shows, at login, the groups with entries not read.
func (s *chat) groupSummary(ctx context.Context) {
	if !s.c.Has(protocol.FeatureGroups) {
		return
	}
	s.groupMu.Lock()
	defer s.groupMu.Unlock()
	gl, err := s.refreshGroups(ctx)
	if err != nil {
		s.println("could not fetch your groups: " + describe(err, ""))
		return
	}
	var b strings.Builder
	for _, g := range gl {
		if g.Unread > 0 {
			b.WriteString(groupLabel(g.Group, g.Name) + ": " + unreadText(g) + " (/g " + sanitize(g.Group) + ")\n")
		}
	}
	s.print(b.String())
}

// showEntry shows a group entry, pushed or made by this user's own
// request, unless it was shown already, keeps the group's state, and
// notes in acks the cursor move it allows: an entry that follows the
// known cursor. s.groupMu is held.
func (s *chat) showEntry(ctx context.Context, e *protocol.GroupEntry, acks map[string]int64) {
	s.mu.Lock()
	_, known := s.groups[e.Group]
	s.mu.Unlock()
	if !known {
		s.refreshGroups(ctx) // the name and cursor of a group new to the chat; without them, "#12"
	}
	s.mu.Lock()
	st := s.groupOf(e.Group)
	// A message may have been shown already out of seq order: this
	// user's own, sent from the outbox while a reconnect caught up.
	if e.Seq <= st.shown || e.Kind == "msg" && e.MsgID != "" && !s.seen.add(e.MsgID) {
		st.shown = max(st.shown, e.Seq)
		s.mu.Unlock()
		return
	}
	mine := e.Target == s.me
	switch {
	case e.Kind == "joined" && mine:
		st.gone, st.read = false, e.Seq-1 // a member's cursor starts before their join
	case e.Kind == "created":
		st.name, st.read = e.Name, 0
	}
	line := formatEntry(e, s.label(e.Group), s.now(), s.loc)
	st.shown = e.Seq
	switch e.Kind {
	case "renamed":
		st.name = e.Name
	case "dissolved":
		st.gone = true
	case "left", "kicked":
		st.gone = st.gone || mine
	}
	if !st.gone && st.read >= 0 && e.Seq == st.read+1 {
		st.read = e.Seq
		acks[e.Group] = e.Seq
	}
	left := st.gone && s.group == e.Group
	if left {
		s.group = ""
	}
	s.mu.Unlock()
	s.print(line)
	if left {
		s.println("(you are no longer in " + groupLabel(e.Group, st.name) + "; plain lines go nowhere until /msg or /g)")
		s.updatePrompt()
	}
}

// ackGroups moves the read cursors as acks says.
func (s *chat) ackGroups(ctx context.Context, acks map[string]int64) {
	for g, seq := range acks {
		rctx, cancel := context.WithTimeout(ctx, chatRequestTimeout)
		err := s.c.GroupAck(rctx, g, seq)
		cancel()
		if err != nil && ctx.Err() == nil && !errors.Is(err, client.ErrDisconnected) {
			select {
			case <-s.c.Done(): // the end is reported by the chat loop
			default:
				s.println("could not mark group entries read: " + describe(err, ""))
			}
			return
		}
	}
}

// ownEntry shows the entry this user's request made (the server pushes
// it to the other members only) and acks it when it follows the cursor.
func (s *chat) ownEntry(ctx context.Context, e protocol.GroupEntry) {
	if e.TS == 0 {
		e.TS = s.now().UnixMilli()
	}
	acks := make(map[string]int64)
	s.groupMu.Lock()
	s.showEntry(ctx, &e, acks)
	s.groupMu.Unlock()
	s.ackGroups(ctx, acks)
}

// enterGroup runs /g <id>: plain lines go to the group from now on, and
// what the user has not read of it is shown and acked.
func (s *chat) enterGroup(ctx context.Context, arg string) {
	id, ok := parseGroupID(arg)
	if !ok {
		s.println("usage: /g <group id>")
		return
	}
	if !s.needs(protocol.FeatureGroups) {
		return
	}
	s.groupMu.Lock()
	defer s.groupMu.Unlock()
	gl, err := s.refreshGroups(ctx)
	if err != nil {
		s.println(describe(err, ""))
		return
	}
	i := slices.IndexFunc(gl, func(g protocol.GroupListing) bool { return g.Group == id })
	if i < 0 {
		s.println("you are not in group #" + sanitize(id) + ": join it with /group join " + sanitize(id))
		return
	}
	s.mu.Lock()
	s.peer, s.group = "", id
	st := s.groupOf(id)
	after := st.read
	s.mu.Unlock()
	if s.typer != nil {
		s.typer.setPeer("#" + id) // typing in the group: "#" is in no user name
	}
	s.updatePrompt()

	shown, last := 0, after
	more := true
	for more && shown < groupCatchUpMax {
		rctx, cancel := context.WithTimeout(ctx, chatRequestTimeout)
		var es []protocol.GroupEntry
		es, more, err = s.c.GroupSync(rctx, id, last, min(groupSyncPage, groupCatchUpMax-shown))
		cancel()
		if err != nil {
			s.println(describeGroup(err, id, ""))
			break
		}
		if len(es) == 0 {
			break
		}
		now := s.now()
		var b strings.Builder
		s.mu.Lock()
		for i := range es {
			b.WriteString(formatEntry(&es[i], s.label(id), now, s.loc))
			if es[i].Kind == "renamed" {
				st.name = es[i].Name
			}
		}
		last = es[len(es)-1].Seq
		st.shown = max(st.shown, last)
		s.mu.Unlock()
		s.print(b.String())
		shown += len(es)
	}
	if last > after {
		rctx, cancel := context.WithTimeout(ctx, chatRequestTimeout)
		err := s.c.GroupAck(rctx, id, last)
		cancel()
		if err != nil {
			s.println("could not mark group entries read: " + describe(err, ""))
		} else {
			s.mu.Lock()
			st.read = max(st.read, last)
			s.mu.Unlock()
		}
	}
	s.mu.Lock()
	label := s.label(id)
	s.mu.Unlock()
	switch {
	case err != nil:
	case shown == 0:
		s.println("nothing unread in " + label + "; plain lines now go to the group (@name mentions name)")
	case more:
		s.println("(more unread in " + label + ": /g " + sanitize(id) + " again shows the next ones)")
	}
}

// groupSend sends a plain line to the group id; @name words mention
// name.
func (s *chat) groupSend(ctx context.Context, id, text string) {
	if !s.c.Connected() {
		if _, err := s.c.EnqueueGroup(id, text, "", mentionsIn(text)...); err != nil {
			s.println(describeGroup(err, id, ""))
			return
		}
		s.println(outboxLine)
		return
	}
	rctx, cancel := context.WithTimeout(ctx, chatRequestTimeout)
	defer cancel()
	r, err := s.c.GroupSend(rctx, id, text, mentionsIn(text)...)
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		s.println(noAnswerLine)
		return
	}
	if err != nil {
		s.println(describeGroup(err, id, ""))
		return
	}
	s.showGroupSent(id, text, r)
}

// showGroupSent shows the message this user sent to the group id, as
// stored.
func (s *chat) showGroupSent(id, text string, r client.GroupSendResult) {
	body := text
	if r.Body != "" {
		body = r.Body
	}
	e := protocol.GroupEntry{Group: id, Seq: r.Seq, Kind: "msg", TS: r.TS, From: s.me, Body: body, MsgID: r.MsgID}
	s.groupMu.Lock()
	s.mu.Lock()
	st := s.groupOf(id)
	// Sending moved the cursor to the message (the server does that).
	st.read = max(st.read, r.Seq)
	st.shown = max(st.shown, r.Seq)
	line := ""
	if s.seen.add(r.MsgID) { // else shown already by a catch-up
		line = formatEntry(&e, s.label(id), s.now(), s.loc)
		if r.Body != "" {
			line += "(a filter changed your message)\n"
		}
	}
	s.mu.Unlock()
	s.groupMu.Unlock()
	s.print(line)
}

// groups runs /groups.
func (s *chat) groupList(ctx context.Context) {
	if !s.needs(protocol.FeatureGroups) {
		return
	}
	s.groupMu.Lock()
	gl, err := s.refreshGroups(ctx)
	s.groupMu.Unlock()
	if err != nil {
		s.println(describe(err, ""))
		return
	}
	s.print(formatGroupList(gl, true))
}

// groupHistory runs /history #<id> [n].
func (s *chat) groupHistory(ctx context.Context, id string, n int) {
	if !s.needs(protocol.FeatureGroups) {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, chatRequestTimeout)
	defer cancel()
	es, more, err := s.c.GroupHistory(rctx, id, 0, n)
	if err != nil {
		s.println(describeGroup(err, id, ""))
		return
	}
	s.mu.Lock()
	label := s.label(id)
	s.mu.Unlock()
	if len(es) == 0 {
		s.println("nothing in " + label + " that you may see")
		return
	}
	now := s.now()
	var b strings.Builder
	if more {
		b.WriteString("(older entries exist)\n")
	}
	for i := range es {
		b.WriteString(formatEntry(&es[i], label, now, s.loc))
	}
	s.print(b.String())
}

const groupUsage = `usage: /group new <name> [open|approval|invite]
       /group join|leave|members|requests|dissolve <id>
       /group invite|approve|reject|kick|admin|member|transfer|unmute <id> <user>
       /group mute <id> <user> [minutes]
       /group rename <id> <name>`

// groupCmd runs /group <sub> ....
func (s *chat) groupCmd(ctx context.Context, rest string) {
	sub, rest, _ := strings.Cut(strings.TrimSpace(rest), " ")
	rest = strings.TrimSpace(rest)
	if sub == "" {
		s.println(groupUsage)
		return
	}
	if sub == "new" {
		s.groupNew(ctx, rest)
		return
	}
	idArg, rest, _ := strings.Cut(rest, " ")
	rest = strings.TrimSpace(rest)
	id, ok := parseGroupID(idArg)
	args := strings.Fields(rest)
	nargs := map[string][2]int{ // sub: min and max arguments after the id
		"join": {0, 0}, "leave": {0, 0}, "members": {0, 0}, "requests": {0, 0}, "dissolve": {0, 0}, "info": {0, 0},
		"invite": {1, 1}, "approve": {1, 1}, "reject": {1, 1}, "kick": {1, 1}, "admin": {1, 1}, "member": {1, 1},
		"transfer": {1, 1}, "unmute": {1, 1}, "mute": {1, 2}, "rename": {1, 1 << 20},
	}
	want, known := nargs[sub]
	if !known || !ok || len(args) < want[0] || len(args) > want[1] {
		s.println(groupUsage)
		return
	}
	if !s.needs(protocol.FeatureGroups) {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, chatRequestTimeout)
	defer cancel()
	user := ""
	if len(args) > 0 {
		user = args[0]
	}
	e := protocol.GroupEntry{Group: id, Actor: s.me, Target: user}
	var seq int64
	var err error
	switch sub {
	case "join":
		var joined bool
		joined, seq, err = s.c.GroupJoin(rctx, id)
		if err == nil && !joined {
			s.println("asked to join #" + sanitize(id) + "; an admin will answer")
			return
		}
		e.Kind, e.Target = "joined", s.me
	case "leave":
		seq, err = s.c.GroupLeave(rctx, id)
		e.Kind, e.Target = "left", s.me
	case "members":
		s.groupMembers(rctx, id)
		return
	case "requests":
		s.groupRequests(rctx, id)
		return
	case "info":
		s.groupInfo(rctx, id)
		return
	case "dissolve":
		seq, err = s.c.GroupDissolve(rctx, id)
		e.Kind = "dissolved"
	case "invite":
		seq, err = s.c.GroupInvite(rctx, id, user)
		e.Kind = "joined"
	case "approve":
		seq, err = s.c.GroupApprove(rctx, id, user)
		e.Kind = "joined"
	case "reject":
		if err = s.c.GroupReject(rctx, id, user); err == nil {
			s.println("refused " + sanitize(user) + "'s request to join #" + sanitize(id))
			return
		}
	case "kick":
		seq, err = s.c.GroupKick(rctx, id, user)
		e.Kind = "kicked"
	case "admin", "member":
		seq, err = s.c.GroupRole(rctx, id, user, sub)
		e.Kind, e.Role = "role", sub
	case "transfer":
		seq, err = s.c.GroupTransfer(rctx, id, user)
		e.Kind = "owner"
	case "mute", "unmute":
		minutes := 0
		if sub == "mute" {
			minutes = defaultMuteMinutes
		}
		if len(args) == 2 {
			v, perr := strconv.Atoi(args[1])
			if perr != nil || v < 0 {
				s.println("usage: /group mute <id> <user> [minutes]  (minutes: 0 unmutes)")
				return
			}
			minutes = v
		}
		d := time.Duration(minutes) * time.Minute
		seq, err = s.c.GroupMute(rctx, id, user, d)
		e.Kind = "muted"
		if d > 0 {
			e.Until = s.now().Add(d).UnixMilli()
		}
	case "rename":
		e.Name = rest
		seq, err = s.c.GroupRename(rctx, id, rest)
		e.Kind, e.Target = "renamed", ""
	}
	if err != nil {
		s.println(describeGroup(err, id, user))
		return
	}
	e.Seq = seq
	s.ownEntry(ctx, e)
}

// groupNew runs /group new <name> [policy].
func (s *chat) groupNew(ctx context.Context, rest string) {
	name, policy := rest, ""
	if i := strings.LastIndexByte(rest, ' '); i >= 0 {
		switch last := rest[i+1:]; last {
		case client.PolicyOpen, client.PolicyApproval, client.PolicyInvite:
			name, policy = strings.TrimSpace(rest[:i]), last
		}
	}
	if name == "" {
		s.println("usage: /group new <name> [open|approval|invite]")
		return
	}
	if !s.needs(protocol.FeatureGroups) {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, chatRequestTimeout)
	defer cancel()
	id, err := s.c.CreateGroup(rctx, name, policy, "")
	if err != nil {
		s.println(describe(err, ""))
		return
	}
	s.ownEntry(ctx, protocol.GroupEntry{Group: id, Seq: 1, Kind: "created", Actor: s.me, Name: name})
	s.println("talk in it with /g " + sanitize(id) + "; others join with /group join " + sanitize(id))
}

func (s *chat) groupMembers(ctx context.Context, id string) {
	var all []protocol.GroupMember
	after, more := "", true
	for more && len(all) < groupMembersShown {
		ms, m, err := s.c.GroupMembers(ctx, id, after, groupMembersShown-len(all))
		if err != nil {
			s.println(describeGroup(err, id, ""))
			return
		}
		if len(ms) == 0 {
			break
		}
		all, more, after = append(all, ms...), m, ms[len(ms)-1].User
	}
	now := s.now()
	names := make([]string, len(all))
	for i, m := range all {
		names[i] = sanitize(m.User)
		var notes []string
		if m.Role != client.RoleMember {
			notes = append(notes, sanitize(m.Role))
		}
		if m.MutedUntil > 0 {
			notes = append(notes, "muted until "+timeLabel(m.MutedUntil, now, s.loc))
		}
		if len(notes) > 0 {
			names[i] += " (" + strings.Join(notes, ", ") + ")"
		}
	}
	s.mu.Lock()
	label := s.label(id)
	s.mu.Unlock()
	line := "members of " + label + ": " + strings.Join(names, ", ")
	if more {
		line += ", …"
	}
	s.println(line)
}

func (s *chat) groupRequests(ctx context.Context, id string) {
	rs, err := s.c.GroupRequests(ctx, id)
	if err != nil {
		s.println(describeGroup(err, id, ""))
		return
	}
	if len(rs) == 0 {
		s.println("no one asks to join #" + sanitize(id))
		return
	}
	var b strings.Builder
	for _, r := range rs {
		b.WriteString(joinRequestLine(id, "", r.User) + "\n")
	}
	s.print(b.String())
}

func (s *chat) groupInfo(ctx context.Context, id string) {
	gi, err := s.c.GroupInfo(ctx, id)
	if err != nil {
		s.println(describeGroup(err, id, ""))
		return
	}
	line := fmt.Sprintf("%s: owner %s, %s, join policy %s, history %s, %d entries",
		groupLabel(gi.Group, gi.Name), sanitize(gi.Owner), plural(int64(gi.Members), "member"), sanitize(gi.Policy), sanitize(gi.History), gi.LastSeq)
	if gi.MuteAll {
		line += ", everyone but the admins muted"
	}
	s.println(line)
}

// joinRequestLine is the line for user's request to join group id.
func joinRequestLine(id, name, user string) string {
	u, g := sanitize(user), sanitize(id)
	return "[" + groupLabel(id, name) + "] " + u + " asks to join (/group approve " + g + " " + u + " or /group reject " + g + " " + u + ")"
}

// groupEvent shows a push of the groups extension; entries it may ack
// go into acks.
func (s *chat) groupEvent(ctx context.Context, e client.Event, acks map[string]int64) {
	switch e.Type {
	case protocol.TypeGroupEntry:
		if e.Entry != nil {
			s.groupMu.Lock()
			s.showEntry(ctx, e.Entry, acks)
			s.groupMu.Unlock()
		}
	case protocol.TypeGroupJoinRequest:
		s.mu.Lock()
		name := ""
		if st := s.groups[e.Group]; st != nil {
			name = st.name
		}
		s.mu.Unlock()
		s.println(joinRequestLine(e.Group, name, e.User))
	}
}

// groupsLogin logs in for a one-shot command of the groups extension.
// The caller must finish c.
func (a *app) groupsLogin(ctx context.Context, g *globals) (*client.Client, error) {
	c, _, err := a.login(ctx, g, client.Options{})
	if err != nil {
		return nil, err
	}
	if err := needs(c, protocol.FeatureGroups); err != nil {
		finish(ctx, c)
		return nil, err
	}
	return c, nil
}

func (a *app) groupsCmd(ctx context.Context, g *globals, args []string) error {
	pos, err := cli.ParseFlags("qq", g.flagSet("groups"), args, 0)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageErrorf("usage: qq groups")
	}
	c, err := a.groupsLogin(ctx, g)
	if err != nil {
		return err
	}
	defer finish(ctx, c)
	gctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	gl, err := c.Groups(gctx)
	if err != nil {
		return failed(err, "")
	}
	if g.json {
		return a.printJSON(struct {
			Groups []protocol.GroupListing `json:"groups"`
		}{gl})
	}
	fmt.Fprint(a.stdout, formatGroupList(gl, false))
	return nil
}

func (a *app) groupSendCmd(ctx context.Context, g *globals, args []string) error {
	fs := g.flagSet("group-send")
	cid := fs.String("cid", "", "client id making retries safe")
	pos, err := cli.ParseFlags("qq", fs, args, 1)
	if err != nil {
		return err
	}
	if len(pos) < 2 {
		return usageErrorf("usage: qq group-send [--cid ID] <group> <text...>")
	}
	id, ok := parseGroupID(pos[0])
	body := strings.Join(pos[1:], " ")
	if !ok {
		return usageErrorf("%q is not a group id (digits, as /groups shows them)", pos[0])
	}
	if body == "" {
		return usageErrorf("empty message")
	}
	c, err := a.groupsLogin(ctx, g)
	if err != nil {
		return err
	}
	defer finish(ctx, c)
	sctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	r, err := c.GroupSendCID(sctx, id, body, *cid, mentionsIn(body)...)
	if err != nil {
		var pe *protocol.Error
		if errors.As(err, &pe) {
			return &cli.Error{Code: codeFor(err), Msg: describeGroup(err, id, ""), Err: err}
		}
		return failed(err, "")
	}
	if g.json {
		return a.printJSON(struct {
			Group string `json:"group"`
			Seq   int64  `json:"seq"`
			TS    int64  `json:"ts"`
			MsgID string `json:"msg_id"`
			Body  string `json:"body,omitempty"`
		}{r.Group, r.Seq, r.TS, r.MsgID, r.Body})
	}
	fmt.Fprintf(a.stdout, "sent to #%s (entry %d)\n", id, r.Seq)
	if r.Body != "" {
		fmt.Fprintf(a.stdout, "note: a filter changed the message to: %s\n", sanitize(r.Body))
	}
	return nil
}
