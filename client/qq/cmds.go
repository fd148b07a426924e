package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/qqchat/qq/client"
	"github.com/qqchat/qq/client/cli"
	"github.com/qqchat/qq/daemon/protocol"
)

// Time limits of one-shot commands.
const (
	dialTimeout    = 10 * time.Second
	commandTimeout = 30 * time.Second
	logoutTimeout  = 5 * time.Second
)

// dial connects to the server named by g, with opts and the TLS settings
// of g.
func (a *app) dial(ctx context.Context, g *globals, opts client.Options) (*client.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	if g.tls || g.ca != "" {
		tc, err := tlsConfig(g)
		if err != nil {
			return nil, &cli.Error{Code: exitUsage, Msg: err.Error(), Err: err}
		}
		opts.TLS = tc
	}
	c, err := client.Dial(ctx, g.addr, opts)
	if err != nil {
		return nil, &cli.Error{Code: exitConnect, Msg: "cannot connect to " + g.addr + ": " + strings.TrimPrefix(err.Error(), "client: "), Err: err}
	}
	return c, nil
}

// tlsConfig builds the client TLS settings from --ca and --server-name.
func tlsConfig(g *globals) (*tls.Config, error) {
	tc := &tls.Config{ServerName: g.serverName, MinVersion: tls.VersionTLS12}
	if tc.ServerName == "" {
		if host, _, err := net.SplitHostPort(g.addr); err == nil {
			tc.ServerName = host
		}
	}
	if g.ca != "" {
		pem, err := os.ReadFile(g.ca)
		if err != nil {
			return nil, fmt.Errorf("--ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca: no PEM certificate in %s", g.ca)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

// login connects with opts and logs in as g.user. It returns the pending
// count.
func (a *app) login(ctx context.Context, g *globals, opts client.Options) (*client.Client, int64, error) {
	if g.user == "" {
		return nil, 0, usageErrorf("no user name: use --user or set QQ_USER")
	}
	pw, err := a.password(ctx, g.user, false)
	if err != nil {
		return nil, 0, err
	}
	c, err := a.dial(ctx, g, opts)
	if err != nil {
		return nil, 0, err
	}
	lctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	pending, err := c.Login(lctx, g.user, pw)
	if err != nil {
		c.Close()
		var pe *protocol.Error
		if errors.As(err, &pe) && pe.Code == protocol.CodeAuthFailed {
			why := "wrong user name or password"
			if pe.Message != "" {
				why = sanitize(pe.Message)
			}
			return nil, 0, &cli.Error{Code: exitAuth, Err: err, Msg: fmt.Sprintf(
				"login failed for %s: %s (new here? create an account with: qq register %s)", g.user, why, g.user)}
		}
		return nil, 0, failed(err, "")
	}
	return c, pending, nil
}

// finish logs out politely and closes the connection.
func finish(ctx context.Context, c *client.Client) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), logoutTimeout)
	defer cancel()
	c.Logout(ctx)
	c.Close()
}

func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return &cli.Error{Code: exitOther, Msg: "write output: " + err.Error(), Err: err}
	}
	return nil
}

// printJSONError prints err as {"error": {...}} on stdout.
func (a *app) printJSONError(err error) {
	type jsonError struct {
		Code         protocol.Code `json:"code,omitempty"`
		Message      string        `json:"message"`
		RetryAfterMS int64         `json:"retry_after_ms,omitempty"`
		Exit         int           `json:"exit"`
	}
	je := jsonError{Message: err.Error(), Exit: exitCode(err)}
	var pe *protocol.Error
	if errors.As(err, &pe) {
		je.Code, je.RetryAfterMS = pe.Code, pe.RetryAfterMS
	}
	var ke *client.KickedError
	if errors.As(err, &ke) {
		je.Code = protocol.Code("kicked")
	}
	a.printJSON(map[string]jsonError{"error": je})
}

func (a *app) registerCmd(ctx context.Context, g *globals, args []string) error {
	pos, err := cli.ParseFlags("qq", g.flagSet("register"), args, 0)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErrorf("usage: qq register <user>")
	}
	user := pos[0]
	if !protocol.ValidUser(user) {
		return usageErrorf("invalid user name %q: 1-32 of a-z 0-9 _ . - starting with a letter or digit", user)
	}
	pw, err := a.password(ctx, user, true)
	if err != nil {
		return err
	}
	c, err := a.dial(ctx, g, client.Options{})
	if err != nil {
		return err
	}
	defer c.Close()
	rctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	if err := c.Register(rctx, user, pw); err != nil {
		return failed(err, user)
	}
	if g.json {
		return a.printJSON(map[string]any{"registered": true, "user": user})
	}
	fmt.Fprintf(a.stdout, "registered %s; start chatting with: qq --user %s\n", user, user)
	return nil
}

func (a *app) sendCmd(ctx context.Context, g *globals, args []string) error {
	fs := g.flagSet("send")
	cid := fs.String("cid", "", "client id making retries safe")
	pos, err := cli.ParseFlags("qq", fs, args, 1)
	if err != nil {
		return err
	}
	if len(pos) < 2 {
		return usageErrorf("usage: qq send [--cid ID] <to> <text...>")
	}
	to, body := pos[0], strings.Join(pos[1:], " ")
	if body == "" {
		return usageErrorf("empty message")
	}
	c, _, err := a.login(ctx, g, client.Options{})
	if err != nil {
		return err
	}
	defer finish(ctx, c)
	sctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	r, err := c.SendCID(sctx, to, body, *cid)
	if err != nil {
		return failed(err, to)
	}
	if g.json {
		out := struct {
			MsgID  string          `json:"msg_id"`
			TS     int64           `json:"ts"`
			Status protocol.Status `json:"status"`
			Body   string          `json:"body,omitempty"`
		}{r.MsgID, r.TS, r.Status, r.Body}
		return a.printJSON(out)
	}
	switch r.Status {
	case protocol.StatusSent:
		fmt.Fprintf(a.stdout, "sent to %s (msg_id %s)\n", to, r.MsgID)
	default:
		fmt.Fprintf(a.stdout, "queued for %s, who is offline (msg_id %s)\n", to, r.MsgID)
	}
	if r.Body != "" {
		fmt.Fprintf(a.stdout, "note: a filter changed the message to: %s\n", sanitize(r.Body))
	}
	return nil
}

func (a *app) usersCmd(ctx context.Context, g *globals, args []string) error {
	pos, err := cli.ParseFlags("qq", g.flagSet("users"), args, 0)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageErrorf("usage: qq users")
	}
	c, _, err := a.login(ctx, g, client.Options{})
	if err != nil {
		return err
	}
	defer finish(ctx, c)
	uctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	users, err := c.Users(uctx)
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

func (a *app) offlineCmd(ctx context.Context, g *globals, args []string) error {
	fs := g.flagSet("offline")
	limit := fs.Int("limit", 0, "page size")
	ack := fs.Bool("ack", false, "ack the shown messages")
	pos, err := cli.ParseFlags("qq", fs, args, 0)
	if err != nil {
		return err
	}
	if len(pos) != 0 || *limit < 0 {
		return usageErrorf("usage: qq offline [--limit N] [--ack]")
	}
	c, _, err := a.login(ctx, g, client.Options{})
	if err != nil {
		return err
	}
	defer finish(ctx, c)
	octx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	msgs, more, err := c.Offline(octx, *limit)
	if err != nil {
		return failed(err, "")
	}
	acked := false
	if *ack && len(msgs) > 0 {
		if err := c.Ack(octx, msgIDs(msgs)...); err != nil {
			return failed(err, "")
		}
		acked = true
	}
	if g.json {
		return a.printJSON(struct {
			Messages []protocol.Message `json:"messages"`
			More     bool               `json:"more"`
			Acked    bool               `json:"acked"`
		}{msgs, more, acked})
	}
	if len(msgs) == 0 {
		fmt.Fprintln(a.stdout, "no messages waiting")
		return nil
	}
	a.printMessages(msgs)
	if more {
		if acked {
			fmt.Fprintln(a.stdout, "(more messages are waiting: run qq offline --ack again)")
		} else {
			fmt.Fprintln(a.stdout, "(more messages are waiting: mark these read with qq offline --ack to see the next ones)")
		}
	}
	return nil
}

func (a *app) historyCmd(ctx context.Context, g *globals, args []string) error {
	fs := g.flagSet("history")
	limit := fs.Int("limit", 0, "page size")
	before := fs.String("before", "", "page before this msg_id")
	pos, err := cli.ParseFlags("qq", fs, args, 0)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *limit < 0 {
		return usageErrorf("usage: qq history <user> [--limit N] [--before MSG_ID]")
	}
	with := pos[0]
	c, _, err := a.login(ctx, g, client.Options{})
	if err != nil {
		return err
	}
	defer finish(ctx, c)
	hctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	msgs, more, err := c.History(hctx, with, *before, *limit)
	if err != nil {
		return failed(err, with)
	}
	if g.json {
		return a.printJSON(struct {
			Messages []protocol.Message `json:"messages"`
			More     bool               `json:"more"`
		}{msgs, more})
	}
	if len(msgs) == 0 {
		fmt.Fprintf(a.stdout, "no messages with %s\n", with)
		return nil
	}
	if more {
		fmt.Fprintf(a.stdout, "(older messages: qq history %s --before %s)\n", with, msgs[0].ID)
	}
	a.printMessages(msgs)
	return nil
}

func (a *app) printMessages(msgs []protocol.Message) {
	now := a.now()
	var b strings.Builder
	for _, m := range msgs {
		b.WriteString(formatMessage(m, now, a.loc))
	}
	fmt.Fprint(a.stdout, b.String())
}

func msgIDs(msgs []protocol.Message) []string {
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	return ids
}

// plural returns "1 message" or "n messages".
func plural(n int64, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.FormatInt(n, 10) + " " + word + "s"
}
