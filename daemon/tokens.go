package daemon

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/daemon/token"
	"github.com/qqchat/qq/plugins"
)

// Resume tokens (the resume extension; docs/protocol.md, "Resume tokens").
//
// A login with remember gets a token (package token makes it); resume logs
// in with it for the cost of one storage lookup by the token's id and a
// constant-time hash comparison, instead of an Argon2id verification. The
// storage keeps the id, the user and the hash of the secret (plugins.Tokens),
// so tokens survive restarts. A token ends when it is revoked (logout of a
// session that holds it, a password change, account deletion, qqadmin kick
// --revoke or revoke), when it was not used for tokens.idle, or
// tokens.lifetime after it was issued. Uses are written back in batches, at
// most once a second (tokenKeeper), so a burst of resumes after a restart
// costs reads, not writes.

// revokeCause is the cause label of qqd_tokens_revoked_total.
type revokeCause uint8

const (
	revokeLogout  revokeCause = iota // the session's logout
	revokeAdmin                      // qqadmin kick --revoke, qqadmin revoke
	revokeExpired                    // found expired at resume, or purged
	revokeUnused                     // issued for a login that then failed
)

var revokeCauseNames = []string{"logout", "admin", "expired", "unused"}

// tokenFlushEvery is how often token uses are written back; tokenPurgeEvery
// how often expired tokens are deleted.
const (
	tokenFlushEvery = time.Second
	tokenPurgeEvery = time.Hour
)

var errTokenFailed = protocol.Errorf(protocol.CodeAuthFailed, "the token is unknown, expired or revoked; log in with the password")

// issueToken makes and stores a new token for user and remembers its id
// as the session's. With tokens off it returns "" and no error.
func (s *session) issueToken(user string) (tok string, expires int64, err error) {
	now := time.Now().UnixMilli()
	expires = now + s.srv.cfg.Tokens.Lifetime.Milliseconds()
	var t token.Token
	on, err := s.srv.withTokens(func(ctx context.Context, tk plugins.Tokens) (err error) {
		for range 3 { // ids are 64 random bits: a clash is a freak
			t = token.New()
			err = tk.AddToken(ctx, plugins.Token{
				ID: t.ID, User: user, Hash: t.Hash(),
				Created: now, LastUsed: now, Expires: expires,
			}, s.srv.cfg.Tokens.PerUser)
			if !errors.Is(err, plugins.ErrTokenExists) {
				break
			}
		}
		return err
	})
	if !on || err != nil {
		return "", 0, err
	}
	s.tokenID = t.ID
	s.srv.m.tokensIssued.Inc()
	return t.String(), expires, nil
}

// revokeOwnToken revokes the session's token and reports whether that
// was done.
func (s *session) revokeOwnToken(cause revokeCause) bool {
	var n int64
	_, err := s.srv.withTokens(func(ctx context.Context, tk plugins.Tokens) (err error) {
		n, err = tk.RevokeTokens(ctx, s.user, []string{s.tokenID})
		return err
	})
	if err != nil { // (tokens turned off: nothing can use it now)
		s.logger().Error("storage call failed", "op", "revoke_tokens", "err", err)
		return false
	}
	s.srv.m.tokensRevoked[cause].Add(float64(n))
	s.tokenID = ""
	return true
}

// resume logs the connection in with a resume token.
func (s *session) resume(req *protocol.Request) {
	count := s.srv.m.resumes
	if s.srv.plugs.Load().tokens == nil {
		// As if the type did not exist: hello did not list resume.
		s.replyErr(req.ID, protocol.Errorf(protocol.CodeUnknownType, "resume tokens are not offered by this server"))
		count[loginInvalid].Inc()
		return
	}
	raw, err := req.RequiredString("token")
	if err != nil {
		s.replyErr(req.ID, err)
		count[loginInvalid].Inc()
		return
	}
	want, _, err := req.String("user")
	if err != nil {
		s.replyErr(req.ID, err)
		count[loginInvalid].Inc()
		return
	}
	if s.loggedIn.Load() {
		s.replyErr(req.ID, protocol.Errorf(protocol.CodeAlreadyLoggedIn, "this connection is logged in as "+s.user))
		count[loginAlreadyLoggedIn].Inc()
		return
	}
	t, perr := token.Parse(raw)
	if perr != nil {
		s.replyErr(req.ID, protocol.Errorf(protocol.CodeBadRequest, "token is not a resume token"))
		count[loginInvalid].Inc()
		return
	}
	// Failed resumes share the per-address budget of failed logins; a
	// token names no account until it is found.
	if e := s.authAttempt(""); e != nil {
		s.replyErr(req.ID, e)
		count[loginRateLimited].Inc()
		return
	}
	var rec plugins.Token
	_, lerr := s.srv.withTokens(func(ctx context.Context, tk plugins.Tokens) (err error) {
		rec, err = tk.Token(ctx, t.ID)
		return err
	})
	if lerr != nil && !errors.Is(lerr, plugins.ErrNoToken) {
		s.authRefund("")
		s.storageFailed(req.ID, "token", lerr)
		count[loginError].Inc()
		return
	}
	now := time.Now().UnixMilli()
	switch genuine := lerr == nil && t.Check(rec.Hash); {
	case !genuine || (want != "" && want != rec.User):
		s.replyErr(req.ID, errTokenFailed)
		count[loginAuthFailed].Inc()
		return
	case now >= s.srv.tokenExpires(rec):
		s.srv.revokeExpired(rec)
		s.replyErr(req.ID, errTokenFailed)
		count[loginAuthFailed].Inc()
		return
	}
	s.authRefund("")
	s.tokenID = t.ID
	s.srv.tokenUses.used(t.ID, now)
	s.enter(req.ID, rec.User, false, s.srv.tokenEnd(rec), count)
}

// revokeExpired deletes an expired token found at resume (best effort:
// the purge gets it otherwise).
func (s *Server) revokeExpired(t plugins.Token) {
	var n int64
	if _, err := s.withTokens(func(ctx context.Context, tk plugins.Tokens) (err error) {
		n, err = tk.RevokeTokens(ctx, t.User, []string{t.ID})
		return err
	}); err == nil {
		s.m.tokensRevoked[revokeExpired].Add(float64(n))
	}
}

// tokenExpires is when t ends: the earlier of its idle end and its
// absolute end, the absolute end never later than tokens.lifetime after
// it was issued (a shorter lifetime configured later applies to tokens
// already issued).
func (s *Server) tokenExpires(t plugins.Token) int64 {
	return min(s.tokenEnd(t), t.LastUsed+s.cfg.Tokens.Idle.Milliseconds())
}

// tokenEnd is the absolute end of t's life (token_expires).
func (s *Server) tokenEnd(t plugins.Token) int64 {
	return min(t.Expires, t.Created+s.cfg.Tokens.Lifetime.Milliseconds())
}

// tokenKeeper writes token uses back in batches and purges expired
// tokens, from one goroutine started by New and stopped by Shutdown.
type tokenKeeper struct {
	mu   sync.Mutex
	uses map[string]int64 // id -> last use, not yet written
	stop chan struct{}
	done chan struct{}
}

func (k *tokenKeeper) used(id string, ts int64) {
	k.mu.Lock()
	if k.uses == nil {
		k.uses = make(map[string]int64)
	}
	k.uses[id] = ts
	k.mu.Unlock()
}

func (k *tokenKeeper) take() []plugins.TokenUse {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.uses) == 0 {
		return nil
	}
	out := make([]plugins.TokenUse, 0, len(k.uses))
	for id, ts := range k.uses {
		out = append(out, plugins.TokenUse{ID: id, TS: ts})
	}
	clear(k.uses)
	return out
}

// startTokenKeeper starts the keeper's goroutine.
func (s *Server) startTokenKeeper() {
	k := &s.tokenUses
	k.stop, k.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(k.done)
		flush := time.NewTicker(tokenFlushEvery)
		defer flush.Stop()
		s.purgeTokens()
		lastPurge := time.Now()
		for {
			select {
			case <-k.stop:
				s.flushTokenUses()
				return
			case <-flush.C:
				s.flushTokenUses()
				if time.Since(lastPurge) >= tokenPurgeEvery {
					s.purgeTokens()
					lastPurge = time.Now()
				}
			}
		}
	}()
}

// stopTokenKeeper writes the last uses back and stops the goroutine.
func (s *Server) stopTokenKeeper() {
	if k := &s.tokenUses; k.stop != nil {
		close(k.stop)
		<-k.done
		k.stop = nil
	}
}

// withTokens runs fn with the storage's Tokens, bounded by the storage
// timeout; ok is false when tokens are off or the storage keeps none.
func (s *Server) withTokens(fn func(context.Context, plugins.Tokens) error) (ok bool, err error) {
	ps := s.acquirePlugs()
	defer ps.release()
	if ps.tokens == nil {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Storage.Timeout)
	defer cancel()
	return true, fn(ctx, ps.tokens)
}

func (s *Server) flushTokenUses() {
	uses := s.tokenUses.take()
	if len(uses) == 0 {
		return
	}
	// A lost batch only makes tokens look idle since their previous use.
	if _, err := s.withTokens(func(ctx context.Context, tk plugins.Tokens) error {
		return tk.TouchTokens(ctx, uses)
	}); err != nil {
		s.log.Warn("storage call failed", "op", "touch_tokens", "tokens", len(uses), "err", err)
	}
}

func (s *Server) purgeTokens() {
	now := time.Now()
	var n int64
	if _, err := s.withTokens(func(ctx context.Context, tk plugins.Tokens) (err error) {
		n, err = tk.PurgeTokens(ctx, now.UnixMilli(), now.Add(-s.cfg.Tokens.Idle).UnixMilli())
		return err
	}); err != nil {
		s.log.Warn("storage call failed", "op", "purge_tokens", "err", err)
		return
	}
	s.m.tokensRevoked[revokeExpired].Add(float64(n))
}

// ErrNoTokens is returned by UserTokens and RevokeTokens when resume tokens
// are off or the storage keeps none.
var ErrNoTokens = errors.New("resume tokens are off, or the storage keeps none")

// UserTokens returns user's resume tokens, most recently used first,
// without their hashes.
func (s *Server) UserTokens(user string) ([]plugins.Token, error) {
	var ts []plugins.Token
	ok, err := s.withTokens(func(ctx context.Context, tk plugins.Tokens) (err error) {
		ts, err = tk.UserTokens(ctx, user)
		return err
	})
	if !ok {
		return nil, ErrNoTokens
	}
	for i := range ts {
		ts[i].Hash = nil
		ts[i].Expires = s.tokenExpires(ts[i])
	}
	return ts, err
}

// RevokeTokens revokes user's tokens with the listed ids, or all of them
// when ids is empty, and returns how many there were. A session that
// logged in with one stays logged in (Kick ends it).
func (s *Server) RevokeTokens(user string, ids []string) (int64, error) {
	var n int64
	ok, err := s.withTokens(func(ctx context.Context, tk plugins.Tokens) (err error) {
		n, err = tk.RevokeTokens(ctx, user, ids)
		return err
	})
	if !ok {
		return 0, ErrNoTokens
	}
	if err != nil {
		return 0, err
	}
	s.m.tokensRevoked[revokeAdmin].Add(float64(n))
	return n, nil
}
