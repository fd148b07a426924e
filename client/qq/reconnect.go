package main

import (
	"errors"
	"io"
	"strings"

	"github.com/qqchat/qq/client"
	"github.com/qqchat/qq/client/cli"
	"github.com/qqchat/qq/daemon/protocol"
)

// This file holds how the chat shows its session riding through a lost
// connection: the "reconnecting…" and "reconnected" lines, the prompt
// while the connection is down, the sends that went out of the outbox
// later, and the end of a session that cannot log in again.

// sessionEvent shows one of the session's own events; it reports false
// for a push.
func (s *chat) sessionEvent(e client.Event) bool {
	switch e.Type {
	case client.EventDown:
		s.mu.Lock()
		s.down = true
		clear(s.typing) // typing pushes of the lost connection end unseen
		s.mu.Unlock()
		s.println(lossText(e.Err) + "; reconnecting…")
		s.updatePrompt()
	case client.EventReconnecting:
		// The prompt says it; attempts are not worth a line each.
	case client.EventUp:
		if e.Attempt == 0 { // the chat's own login
			return true
		}
		s.mu.Lock()
		s.down = false
		s.mu.Unlock()
		line := "reconnected"
		if e.Pending > 0 {
			line += " (" + plural(e.Pending, "message") + " waiting)"
		}
		s.println(line)
		s.updatePrompt()
		if s.login.remember {
			if note := s.login.save(); note != "" {
				s.println(note)
			}
		}
	case client.EventSendDone:
		s.sendDone(e.Send)
	default:
		return false
	}
	return true
}

// lossText says why the connection was lost.
func lossText(err error) string {
	var ke *client.KickedError
	switch {
	case errors.As(err, &ke):
		return describeKick(ke)
	case err == nil, errors.Is(err, io.EOF):
		return "connection to the server lost: the server closed it"
	}
	return "connection to the server lost: " + sanitize(describe(err, ""))
}

// sendDone shows a send from the outbox whose result came after the
// line that queued it.
func (s *chat) sendDone(d *client.SendDone) {
	switch {
	case d.Err != nil && d.Group != "":
		s.println("not sent to #" + sanitize(d.Group) + " (" + sanitize(shortBody(d.Body)) + "): " + describeGroup(d.Err, d.Group, ""))
	case d.Err != nil:
		s.println("not sent to " + sanitize(d.To) + " (" + sanitize(shortBody(d.Body)) + "): " + describe(d.Err, d.To))
	case d.Group != "":
		s.showGroupSent(d.Group, d.Body, d.GroupResult)
	default:
		s.showSent(d.To, d.Body, d.Result)
	}
}

// shortBody is the start of a body, to name a message in a line.
func shortBody(body string) string {
	body, _, _ = strings.Cut(body, "\n")
	if r := []rune(body); len(r) > 40 {
		return string(r[:40]) + "…"
	}
	return body
}

// showUnsent lists the messages still in the outbox, so that the user
// can send them again.
func (s *chat) showUnsent() {
	var b strings.Builder
	for _, o := range s.c.Unsent() {
		to := sanitize(o.To)
		if o.Group != "" {
			to = "#" + sanitize(o.Group)
		}
		b.WriteString("not sent (no answer from the server) to " + to + ": " + indentBody(o.Body) + "\n")
	}
	s.print(b.String())
}

// ended is the error of a chat whose session ended by itself: an
// operator's kick, or a login the server refused when reconnecting.
func (s *chat) ended() error {
	err := s.c.Err()
	s.showUnsent()
	var ke *client.KickedError
	if errors.As(err, &ke) {
		return &cli.Error{Code: exitOther, Msg: describeKick(ke), Err: err}
	}
	if errors.Is(err, &protocol.Error{Code: protocol.CodeAuthFailed}) || errors.Is(err, client.ErrNoCredentials) {
		msg := "could not log in again: " + describe(err, "")
		if note := s.login.forget(); note != "" {
			msg += " (" + note + ")"
		}
		return &cli.Error{Code: exitAuth, Msg: msg + "; run qq again to log in with your password", Err: err}
	}
	if err == nil {
		err = io.EOF
	}
	return &cli.Error{Code: exitOther, Msg: "connection to the server lost: " + describe(err, ""), Err: err}
}
