package client

import (
	"context"
	"time"

	"github.com/qqchat/qq/daemon/protocol"
)

// This file holds the requests of qqd's resume extension: a login may ask
// for a resume token, and a later connection logs in with the token
// instead of the password (feature "resume" in hello's features).

// LoginResult is the ok to a login or a resume.
type LoginResult struct {
	// User is the name the connection is logged in as.
	User string
	// Pending is the number of messages pending for the user; they are
	// not pushed: fetch them with Offline.
	Pending int64
	// Token is the resume token the server issued: set only by
	// LoginRemember on a server that lists the resume feature. A token
	// is a credential: keep it as safe as the password.
	Token string
	// TokenExpires is the end of the token's life (the server's idle
	// limit also applies); zero when the reply carried none.
	TokenExpires time.Time
}

// LoginRemember logs in like Login and asks for a resume token (the
// login's remember field). A server without the resume extension ignores
// the request: the result then has no Token. A logout of this connection
// revokes the token.
func (c *Client) LoginRemember(ctx context.Context, user, password string) (LoginResult, error) {
	return c.login(ctx, user, password, true)
}

// login is Login, with remember when asked.
func (c *Client) login(ctx context.Context, user, password string, remember bool) (LoginResult, error) {
	f, err := c.call(ctx, protocol.TypeLogin, func(f protocol.Frame) protocol.Frame {
		f = f.Str("user", user).Str("password", password)
		if remember {
			f = f.Bool("remember", true)
		}
		return f
	})
	if err != nil {
		return LoginResult{}, err
	}
	return loginResult(f), nil
}

// Resume logs the connection in with a resume token instead of a
// password. user may be "" (the token names its user); when given, a
// token of another user is refused. A refused token gets auth_failed, the
// same for an unknown, expired or revoked one; a server without the
// extension answers unknown_type. A logout of this connection revokes the
// token.
func (c *Client) Resume(ctx context.Context, token, user string) (LoginResult, error) {
	f, err := c.call(ctx, protocol.TypeResume, func(f protocol.Frame) protocol.Frame {
		f = f.Str("token", token)
		if user != "" {
			f = f.Str("user", user)
		}
		return f
	})
	if err != nil {
		return LoginResult{}, err
	}
	r := loginResult(f)
	r.Token = ""
	return r, nil
}

func loginResult(f *frame) LoginResult {
	r := LoginResult{User: f.User, Pending: f.Pending, Token: f.Token}
	if f.TokenExpires > 0 {
		r.TokenExpires = time.UnixMilli(f.TokenExpires)
	}
	return r
}
