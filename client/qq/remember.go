package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/qqchat/qq/client"
	"github.com/qqchat/qq/client/cli"
	"github.com/qqchat/qq/daemon/protocol"
)

// This file holds the chat's login: a client.Session, by a remembered
// resume token when there is one, else by password. The session always
// asks the server for a token (when it offers them) and resumes with it
// after a lost connection; the token is written to a file only with
// --remember, and the file is read at the start of every chat.

// maxTokenFile bounds what is read of a token file.
const maxTokenFile = 4096

// tokenFile is a remembered login: <config dir>/qq/token-<server>-<user>,
// holding the token on one line, mode 0600.
type tokenFile struct{ path string }

// tokenFileFor returns the token file of g's server and user; nil when
// qq has no configuration directory (or the user name could not be
// anyone's).
func (a *app) tokenFileFor(g *globals) (*tokenFile, error) {
	if a.configDir == nil || !protocol.ValidUser(g.user) {
		return nil, nil
	}
	dir, err := a.configDir()
	if err != nil {
		if g.remember {
			return nil, &cli.Error{Code: exitUsage, Msg: "cannot remember the login: " + err.Error(), Err: err}
		}
		return nil, nil
	}
	return &tokenFile{path: filepath.Join(dir, "qq", "token-"+fileSafe(g.addr)+"-"+g.user)}, nil
}

// fileSafe keeps the letters, digits, '.' and '-' of s and turns every
// other byte into '_'.
func fileSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-':
			return r
		}
		return '_'
	}, s)
}

// read returns the remembered token, or "" when there is none. A file
// that others may read or write is refused, not used.
func (tf *tokenFile) read() (string, error) {
	f, err := os.Open(tf.path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", &cli.Error{Code: exitUsage, Msg: "cannot read the remembered login: " + err.Error(), Err: err}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", &cli.Error{Code: exitUsage, Msg: "cannot read the remembered login: " + err.Error(), Err: err}
	}
	if !fi.Mode().IsRegular() {
		return "", usageErrorf("%s is not a regular file: qq does not use it as a remembered login", tf.path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", usageErrorf("%s may be read or written by others (mode %04o): qq does not use such a remembered login; delete it (or chmod 600 it if only you could ever read it)", tf.path, perm)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile))
	if err != nil {
		return "", &cli.Error{Code: exitUsage, Msg: "cannot read the remembered login: " + err.Error(), Err: err}
	}
	return strings.TrimSpace(string(b)), nil
}

// write remembers token: a new file of mode 0600 (in a directory of mode
// 0700 if it has to be made) replaces the old one.
func (tf *tokenFile) write(token string) error {
	dir := filepath.Dir(tf.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("remember the login: %w", err)
	}
	f, err := os.CreateTemp(dir, ".token-*") // mode 0600
	if err != nil {
		return fmt.Errorf("remember the login: %w", err)
	}
	_, err = io.WriteString(f, token+"\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), tf.path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("remember the login: %w", err)
	}
	return nil
}

// remove forgets the remembered login.
func (tf *tokenFile) remove() error {
	if err := os.Remove(tf.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("forget the remembered login: %w", err)
	}
	return nil
}

// chatLogin is the chat's login and what it remembers.
type chatLogin struct {
	s *client.Session
	// tf is the token file; nil when qq has none.
	tf *tokenFile
	// remember: the token is kept in tf (--remember, or the chat resumed
	// by a remembered token).
	remember bool
	// mu serializes save and forget (the chat's events and its input);
	// saved is the token tf holds.
	mu    sync.Mutex
	saved string
	// notes are lines for the chat to show first.
	notes []string
}

// chatSession logs the chat in: by the remembered token if there is one
// (a refused token is forgotten), else by password.
func (a *app) chatSession(ctx context.Context, g *globals) (*chatLogin, error) {
	if g.user == "" {
		return nil, usageErrorf("no user name: use --user or set QQ_USER")
	}
	tf, err := a.tokenFileFor(g)
	if err != nil {
		return nil, err
	}
	l := &chatLogin{tf: tf, remember: g.remember && tf != nil}
	opts := client.SessionOptions{User: g.user, Remember: true}
	if tf != nil {
		token, err := tf.read()
		if err != nil {
			return nil, err
		}
		if token != "" {
			opts.Token = token
			s, err := a.connect(ctx, g, opts)
			var pe *protocol.Error
			switch {
			case err == nil:
				l.s, l.remember, l.saved = s, true, token
				return l, nil
			case errors.Is(err, client.ErrNoCredentials):
				l.notes = append(l.notes, "this server does not take remembered logins now: log in with your password")
			case errors.As(err, &pe) && (pe.Code == protocol.CodeAuthFailed || pe.Code == protocol.CodeBadRequest):
				if err := tf.remove(); err != nil {
					return nil, &cli.Error{Code: exitOther, Msg: err.Error(), Err: err}
				}
				l.notes = append(l.notes, "the remembered login was refused (expired or revoked) and is forgotten")
				fmt.Fprintln(a.stderr, "qq: the remembered login was refused (expired or revoked); log in with your password")
			default:
				return nil, chatConnectError(err, g)
			}
			opts.Token = ""
		}
	}
	pw, err := a.password(ctx, g.user, false)
	if err != nil {
		return nil, err
	}
	opts.Password = pw
	s, err := a.connect(ctx, g, opts)
	if err != nil {
		return nil, chatConnectError(err, g)
	}
	l.s = s
	if l.remember {
		if token, _ := s.Token(); token == "" {
			l.notes = append(l.notes, "this server does not offer remembered logins: nothing was stored")
		} else {
			l.notes = append(l.notes, l.save())
		}
	}
	return l, nil
}

// connect starts a session with opts and the dial settings of g.
func (a *app) connect(ctx context.Context, g *globals, opts client.SessionOptions) (*client.Session, error) {
	if g.tls || g.ca != "" {
		tc, err := tlsConfig(g)
		if err != nil {
			return nil, &cli.Error{Code: exitUsage, Msg: err.Error(), Err: err}
		}
		opts.Options.TLS = tc
	}
	ctx, cancel := context.WithTimeout(ctx, dialTimeout+commandTimeout)
	defer cancel()
	return client.Connect(ctx, g.addr, opts)
}

// chatConnectError is the error of a failed first login of the chat.
func chatConnectError(err error, g *globals) error {
	var ce *cli.Error
	if errors.As(err, &ce) {
		return err
	}
	var pe *protocol.Error
	if errors.As(err, &pe) {
		if pe.Code == protocol.CodeAuthFailed {
			why := "wrong user name or password"
			if pe.Message != "" {
				why = sanitize(pe.Message)
			}
			return &cli.Error{Code: exitAuth, Err: err, Msg: fmt.Sprintf(
				"login failed for %s: %s (new here? create an account with: qq register %s)", g.user, why, g.user)}
		}
		return failed(err, "")
	}
	return &cli.Error{Code: exitConnect, Msg: "cannot connect to " + g.addr + ": " + strings.TrimPrefix(err.Error(), "client: "), Err: err}
}

// save brings the token file in line with the session's token and
// returns a line saying what it did ("" when nothing changed).
func (l *chatLogin) save() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	token, _ := l.s.Token()
	switch {
	case token == l.saved:
		return ""
	case token == "":
		return l.forgetLocked()
	}
	if err := l.tf.write(token); err != nil {
		return "could not " + err.Error()
	}
	l.saved = token
	return "login remembered in " + l.tf.path + " (/logout forgets it)"
}

// forget removes the remembered login after a logout or a refusal.
func (l *chatLogin) forget() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.forgetLocked()
}

func (l *chatLogin) forgetLocked() string {
	if l.tf == nil || !l.remember {
		return ""
	}
	if err := l.tf.remove(); err != nil {
		return "could not " + err.Error()
	}
	l.saved = ""
	return "the remembered login is forgotten"
}
