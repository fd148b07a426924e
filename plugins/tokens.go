package plugins

import (
	"context"
	"errors"
)

// Errors of Tokens. Callers test them with errors.Is; they cross the plugin
// process boundary like the others.
var (
	// ErrNoToken is returned by Token when no token has the id (never
	// issued, revoked, purged, or dropped to keep a user's count bounded).
	ErrNoToken = errors.New("no such token")
	// ErrTokenExists is returned by AddToken when the id is taken. Ids are
	// random, so the host draws another one and tries again.
	ErrTokenExists = errors.New("token id exists")
)

// Token is a stored resume token (a QQP/1 extension: `login` with
// `remember`, then `resume`). The host hands the client a token made of a
// public id and a random secret; the storage keeps the id, the user and a
// hash of the secret, never the secret itself, so that a copy of the
// database logs no one in.
type Token struct {
	// ID is the public part of the token: unique, made by the host
	// (16 lowercase hex digits), shown to operators and users.
	ID string
	// User owns the token; a token never logs in as anyone else.
	User string
	// Hash is the host's hash of the secret (SHA-256, 32 bytes), compared
	// by the host in constant time. Opaque to the storage.
	Hash []byte
	// Created, LastUsed and Expires are unix milliseconds. Expires is the
	// absolute end of the token's life; the idle limit (LastUsed plus the
	// host's idle lifetime) is the host's to apply.
	Created  int64
	LastUsed int64
	Expires  int64
}

// TokenUse records that a token was used at TS (unix ms).
type TokenUse struct {
	ID string
	TS int64
}

// Tokens is the part of a Storage that keeps resume tokens. A storage that
// implements it (sqlitestore does) lets users resume sessions without a
// password; find it with TokensOf, not with a type assertion.
//
// Such a storage also removes every token of a user in SetPasswordHash
// (a password change revokes every session token) and in DeleteUser, in
// the same transaction as the change itself. Every method is safe for
// concurrent use with every other method of the Storage.
type Tokens interface {
	// AddToken stores t (durably, like Write). Then, if t.User has more
	// than keep tokens, it removes the least recently used ones (by
	// LastUsed, then Created) until keep are left; t itself, being the
	// newest, stays when keep >= 1. ErrUnknownUser if t.User is not a live
	// user; ErrTokenExists if a token with t.ID exists (of any user).
	AddToken(ctx context.Context, t Token, keep int) error
	// Token returns the token with id, or ErrNoToken. It returns expired
	// tokens too: expiry is the host's decision.
	Token(ctx context.Context, id string) (Token, error)
	// TouchTokens sets the LastUsed of each listed token to its TS when TS
	// is later; ids of tokens that no longer exist are ignored. It need
	// not be durable: a lost touch only makes a token look idle since an
	// earlier use.
	TouchTokens(ctx context.Context, uses []TokenUse) error
	// UserTokens returns user's tokens, most recently used first (an
	// unknown or deleted user has none: an empty slice, no error).
	UserTokens(ctx context.Context, user string) ([]Token, error)
	// RevokeTokens removes user's tokens whose ids are listed, or all of
	// user's tokens when ids is empty, durably, and returns how many were
	// removed. Listed ids that are not user's are left alone.
	RevokeTokens(ctx context.Context, user string, ids []string) (int64, error)
	// PurgeTokens removes every token that expired: Expires <= now, or
	// LastUsed <= idleBefore. It returns how many were removed.
	PurgeTokens(ctx context.Context, now, idleBefore int64) (int64, error)
}

// TokensOf returns s's Tokens, if it has them: for a storage in a plugin
// process, when the plugin said so at Configure (protocol version 2 and
// the plugin's storage implements Tokens); for a storage in this process,
// when it implements Tokens (or a wrapper reports it, like SocialOf).
func TokensOf(s Storage) (Tokens, bool) {
	if w, ok := s.(interface{ Tokens() (Tokens, bool) }); ok {
		return w.Tokens()
	}
	t, ok := s.(Tokens)
	return t, ok
}
