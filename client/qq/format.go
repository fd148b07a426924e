package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/qqchat/qq/client"
	"github.com/qqchat/qq/daemon/protocol"
)

// formatMessage renders m as "[15:04] alice: text\n" in loc. Messages not
// from now's day get the date too. The body is made safe for a terminal,
// and continuation lines of a multi-line body are indented.
func formatMessage(m protocol.Message, now time.Time, loc *time.Location) string {
	return formatMessageFor(m, "", now, loc)
}

// formatMessageFor is formatMessage from the point of view of user me: a
// message me sent to someone else reads "[15:04] me → bob: text".
func formatMessageFor(m protocol.Message, me string, now time.Time, loc *time.Location) string {
	var b strings.Builder
	b.WriteString("[" + timeLabel(m.TS, now, loc) + "] " + sanitize(m.From))
	if me != "" && m.From == me && m.To != me {
		b.WriteString(" → " + sanitize(m.To))
	}
	b.WriteString(": ")
	for i, line := range strings.Split(m.Body, "\n") {
		if i > 0 {
			b.WriteString("\n    ")
		}
		b.WriteString(sanitize(line))
	}
	b.WriteByte('\n')
	return b.String()
}

// timeLabel renders the unix milliseconds ms in loc as "15:04", with the
// date too when it is not now's day.
func timeLabel(ms int64, now time.Time, loc *time.Location) string {
	t := time.UnixMilli(ms).In(loc)
	now = now.In(loc)
	layout := "15:04"
	switch {
	case t.Year() != now.Year():
		layout = "2006-01-02 15:04"
	case t.YearDay() != now.YearDay():
		layout = "Jan 2 15:04"
	}
	return t.Format(layout)
}

// sanitize makes s safe to print on a terminal: control characters (which
// could move the cursor or recolor the screen) become visible escapes, and
// invalid UTF-8 becomes U+FFFD. Tabs are kept.
func sanitize(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || (r != '\t' && unicode.IsControl(r)) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\t', r == utf8.RuneError:
			b.WriteRune(r)
		case unicode.IsControl(r):
			q := fmt.Sprintf("%q", string(r))
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// describe turns err into a line for people. name is the user the request
// was about (the recipient, the history peer, the name to register), if any.
func describe(err error, name string) string {
	var pe *protocol.Error
	var ke *client.KickedError
	switch {
	case errors.As(err, &ke):
		return describeKick(ke)
	case errors.As(err, &pe):
		return describeServerError(pe, name)
	case errors.Is(err, client.ErrDisconnected):
		return "not connected to the server (reconnecting…); try again when it says reconnected"
	case errors.Is(err, client.ErrOutboxFull):
		return "too many messages wait to be sent; try again when it says reconnected"
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out waiting for the server"
	case errors.Is(err, context.Canceled):
		return "interrupted"
	}
	return err.Error()
}

func describeKick(ke *client.KickedError) string {
	var why string
	switch ke.Reason {
	case protocol.KickShutdown:
		why = "the server is shutting down"
	case protocol.KickSlowConsumer:
		why = "this connection fell too far behind"
	case protocol.KickAdmin:
		why = "an operator kicked you"
	case protocol.KickIdle:
		why = "the connection was idle for too long"
	default:
		why = "reason " + sanitize(string(ke.Reason))
	}
	s := "disconnected by the server: " + why
	if ke.Message != "" {
		s += " (" + sanitize(ke.Message) + ")"
	}
	return s
}

// describeServerError is the line for an error reply. The server writes
// its messages for people (for unavailable, say, whether storage or a
// filter is down), so qq shows the message as sent and adds only what the
// server cannot know: the name the request was about, the retry time, that
// the connection is closed. qq's own text stands in only when the server
// sent no message.
func describeServerError(pe *protocol.Error, name string) string {
	text := func(fallback string) string {
		if pe.Message == "" {
			return fallback
		}
		return sanitize(pe.Message)
	}
	about := func(s string) string {
		if name == "" {
			return s
		}
		return sanitize(name) + ": " + s
	}
	switch pe.Code {
	case protocol.CodeUnknownUser:
		return about(text("not a registered user"))
	case protocol.CodeBlocked:
		return about(text("blocked"))
	case protocol.CodeNotFriends:
		return about(text("you are not friends"))
	case protocol.CodeNoRequest:
		return about(text("no such friend request"))
	case protocol.CodeUserExists:
		return about(text("that user name is taken"))
	case protocol.CodeTooLarge:
		return text("message too large")
	case protocol.CodeFrameTooLarge:
		return text("message too large") + " (the server closed the connection)"
	case protocol.CodeRejected:
		return "rejected: " + text("refused by the server's filter")
	case protocol.CodeRateLimited:
		return fmt.Sprintf("%s; retry in %d ms", text("rate limited"), pe.RetryAfterMS)
	case protocol.CodeRegistrationClosed:
		return text("registration is closed on this server")
	case protocol.CodeAuthFailed:
		return "login failed: " + text("wrong user name or password")
	case protocol.CodeNotLoggedIn:
		return text("not logged in")
	case protocol.CodeAlreadyLoggedIn:
		return text("already logged in")
	case protocol.CodeUnavailable:
		return text("the server cannot handle this request right now; try again later")
	case protocol.CodeBadRequest:
		if pe.Message == "" {
			return "invalid request"
		}
		return "invalid request: " + text("")
	}
	return text("server error " + sanitize(string(pe.Code)))
}

// presenceMark is the mark that shows a friend's presence state.
func presenceMark(state string) string {
	switch state {
	case "online":
		return "●"
	case "away":
		return "◐"
	case "busy":
		return "⊘"
	case "offline":
		return "○"
	}
	return "?"
}

// presenceText renders a presence as "away" or "away: at lunch".
func presenceText(state, text string) string {
	s := sanitize(state)
	if text != "" {
		s += ": " + sanitize(text)
	}
	return s
}

// requestLine is the line for a friend request from from. cmd is how the
// user runs a command: "/" in the chat, "qq " in a shell.
func requestLine(from, note, cmd string) string {
	from = sanitize(from)
	s := from + " wants to be your friend"
	if note != "" {
		s += ": " + sanitize(note)
	}
	return s + " (" + cmd + "accept " + from + " or " + cmd + "decline " + from + ")"
}

// formatFriendList renders a friends listing: the friends with a presence
// mark, then the requests to the user and the user's own. cmd is as in
// requestLine.
func formatFriendList(fl *client.FriendList, cmd string) string {
	var b strings.Builder
	if len(fl.Friends) == 0 {
		b.WriteString("no friends yet: ask someone with " + cmd + "add <user> [note]\n")
	} else {
		width := 0
		for _, f := range fl.Friends {
			width = max(width, utf8.RuneCountInString(sanitize(f.User)))
		}
		b.WriteString("friends:\n")
		for _, f := range fl.Friends {
			name := sanitize(f.User)
			pad := strings.Repeat(" ", width-utf8.RuneCountInString(name))
			b.WriteString("  " + presenceMark(f.Presence) + " " + name + pad + "  " + presenceText(f.Presence, f.Text) + "\n")
		}
	}
	if len(fl.Incoming) > 0 {
		b.WriteString("asking to be your friend:\n")
		for _, r := range fl.Incoming {
			b.WriteString("  " + requestLine(r.From, r.Note, cmd) + "\n")
		}
	}
	if len(fl.Outgoing) > 0 {
		b.WriteString("your requests waiting for an answer:\n")
		for _, r := range fl.Outgoing {
			to := sanitize(r.To)
			line := "  " + to
			if r.Note != "" {
				line += ": " + sanitize(r.Note)
			}
			b.WriteString(line + " (" + cmd + "cancel " + to + " to withdraw it)\n")
		}
	}
	return b.String()
}

// eventLine is the chat's line for a push other than a message, without
// the newline; "" for those it shows otherwise (typing) or not at all
// (types it does not know).
func eventLine(e client.Event) string {
	user := sanitize(e.User)
	switch e.Type {
	case protocol.TypeFriendRequest:
		return requestLine(e.User, e.Note, "/")
	case protocol.TypeFriendAdded:
		return "you and " + user + " are now friends"
	case protocol.TypeFriendRemoved:
		return user + " is no longer your friend"
	case protocol.TypeFriendDeclined:
		return user + " declined your friend request"
	case protocol.TypeFriendCancelled:
		return user + " withdrew their friend request"
	case protocol.TypePresence:
		return user + " is " + presenceText(e.State, e.Text)
	case protocol.TypeNotice:
		return "notice from the server: " + sanitize(e.Text)
	}
	return ""
}
