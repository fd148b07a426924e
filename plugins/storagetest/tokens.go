package storagetest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/qqchat/qq/plugins"
)

// tokensTester adds the Tokens of the storage under test to a tester.
type tokensTester struct {
	*tester
	tk plugins.Tokens
}

// newTokensTester opens a storage with users, skipping the test when the
// storage has no Tokens.
func newTokensTester(t *testing.T, open func(*testing.T) plugins.Storage, users ...string) *tokensTester {
	t.Helper()
	h := newTester(t, open, users...)
	tk, ok := plugins.TokensOf(h.st)
	if !ok {
		t.Skip("the storage has no plugins.Tokens")
	}
	return &tokensTester{tester: h, tk: tk}
}

// in is h for the subtest t: the same storage, failing t.
func (h *tokensTester) in(t *testing.T) *tokensTester {
	return &tokensTester{tester: &tester{t: t, st: h.st}, tk: h.tk}
}

// tokenID is the n-th test token id, of the host's form (16 lowercase hex
// digits).
func tokenID(n int) string { return fmt.Sprintf("%016x", 0xa0000000+n) }

// tok is a token of user with id tokenID(n), created at ts0+created, last
// used at ts0+used, expiring 30 days after its creation; its hash is a
// SHA-256 like the host's.
func tok(n int, user string, created, used int64) plugins.Token {
	sum := sha256.Sum256([]byte("secret " + tokenID(n)))
	return plugins.Token{
		ID: tokenID(n), User: user, Hash: sum[:],
		Created: ts0 + created, LastUsed: ts0 + used, Expires: ts0 + created + 30*24*3600*1000,
	}
}

// add stores t, which must succeed.
func (h *tokensTester) add(t plugins.Token, keep int) {
	h.t.Helper()
	if err := h.tk.AddToken(h.ctx(), t, keep); err != nil {
		h.t.Fatalf("AddToken(%+v, %d): %v", t, keep, err)
	}
}

func (h *tokensTester) touch(uses ...plugins.TokenUse) {
	h.t.Helper()
	if err := h.tk.TouchTokens(h.ctx(), uses); err != nil {
		h.t.Fatalf("TouchTokens(%+v): %v", uses, err)
	}
}

func (h *tokensTester) userTokens(user string) []plugins.Token {
	h.t.Helper()
	ts, err := h.tk.UserTokens(h.ctx(), user)
	if err != nil {
		h.t.Fatalf("UserTokens(%q): %v", user, err)
	}
	return ts
}

// checkToken fails unless Token(want.ID) returns want exactly (the hash
// byte for byte).
func (h *tokensTester) checkToken(want plugins.Token) {
	h.t.Helper()
	got, err := h.tk.Token(h.ctx(), want.ID)
	if err != nil || !equalToken(got, want) {
		h.t.Errorf("Token(%q) = %+v, %v; want %+v", want.ID, got, err, want)
	}
}

// checkGone fails unless Token(id) answers ErrNoToken.
func (h *tokensTester) checkGone(id string) {
	h.t.Helper()
	if got, err := h.tk.Token(h.ctx(), id); !errors.Is(err, plugins.ErrNoToken) {
		h.t.Errorf("Token(%q) = %+v, %v; want ErrNoToken", id, got, err)
	}
}

// checkUserTokens fails unless UserTokens(user) lists exactly the tokens
// with the ids want, in that order.
func (h *tokensTester) checkUserTokens(user string, want ...string) {
	h.t.Helper()
	got := h.userTokens(user)
	if ids := tokenIDs(got); !slices.Equal(ids, want) {
		h.t.Errorf("UserTokens(%q) = %v, want %v", user, ids, want)
	}
	for _, t := range got {
		if t.User != user {
			h.t.Errorf("UserTokens(%q) lists %+v, a token of another user", user, t)
		}
	}
}

func tokenIDs(ts []plugins.Token) []string {
	ids := make([]string, len(ts))
	for i, t := range ts {
		ids[i] = t.ID
	}
	return ids
}

func equalToken(a, b plugins.Token) bool {
	return a.ID == b.ID && a.User == b.User && bytes.Equal(a.Hash, b.Hash) &&
		a.Created == b.Created && a.LastUsed == b.LastUsed && a.Expires == b.Expires
}

func runTokens(t *testing.T, open func(*testing.T) plugins.Storage) {
	t.Run("add and look up", func(t *testing.T) { runTokenAdd(t, open) })
	t.Run("keep", func(t *testing.T) { runTokenKeep(t, open) })
	t.Run("touch", func(t *testing.T) { runTokenTouch(t, open) })
	t.Run("user tokens", func(t *testing.T) { runUserTokens(t, open) })
	t.Run("revoke", func(t *testing.T) { runTokenRevoke(t, open) })
	t.Run("purge", func(t *testing.T) { runTokenPurge(t, open) })
	t.Run("password change", func(t *testing.T) { runTokenPasswordChange(t, open) })
	t.Run("deleted account", func(t *testing.T) { runTokenDeletedAccount(t, open) })
}

func runTokenAdd(t *testing.T, open func(*testing.T) plugins.Storage) {
	h := newTokensTester(t, open, "alice", "bob", "carol")
	h.deleteUser("carol")

	// The hash is opaque: every byte value, any length, comes back as it
	// went in.
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(255 - i) // ends in 0x00
	}
	for i, hash := range [][]byte{
		tok(0, "alice", 0, 0).Hash,
		{0x00},
		{0xff, 0xfe, 0xc3, 0x28, 0x00, 0x00},
		append([]byte{0}, bytes.Repeat([]byte{0x80}, 31)...),
		all,
	} {
		tk := tok(i, "alice", int64(i), int64(i))
		tk.Hash = hash
		h.add(tk, 100)
		h.checkToken(tk)
	}
	first := tok(0, "alice", 0, 0)

	// An expired token is still returned: expiry is the host's.
	expired := tok(10, "bob", 0, 1)
	expired.Expires = ts0 - 1
	h.add(expired, 100)
	h.checkToken(expired)

	tests := []struct {
		name    string
		token   plugins.Token
		wantErr error
	}{
		{"taken id, same user", tok(0, "alice", 50, 50), plugins.ErrTokenExists},
		{"taken id, another user", tok(0, "bob", 50, 50), plugins.ErrTokenExists},
		{"unknown user", tok(20, "ghost", 50, 50), plugins.ErrUnknownUser},
		{"names are byte-wise", tok(21, "Alice", 50, 50), plugins.ErrUnknownUser},
		{"deleted user", tok(22, "carol", 50, 50), plugins.ErrUnknownUser},
		{"new id", tok(23, "bob", 50, 50), nil},
	}
	for _, tt := range tests { // sequential: tokens accumulate
		t.Run(tt.name, func(t *testing.T) {
			h := h.in(t)
			err := h.tk.AddToken(h.ctx(), tt.token, 100)
			if !isErr(err, tt.wantErr) {
				t.Fatalf("AddToken(%+v) = %v, want %v", tt.token, err, tt.wantErr)
			}
			if tt.wantErr == nil {
				h.checkToken(tt.token)
			}
			if errors.Is(tt.wantErr, plugins.ErrUnknownUser) {
				h.checkGone(tt.token.ID)
			}
		})
	}
	// A refused AddToken left the token that had the id as it was.
	h.checkToken(first)
	h.checkUserTokens("bob", tokenID(23), tokenID(10))

	for _, id := range []string{tokenID(99), "", strings.ToUpper(tokenID(0))} {
		h.checkGone(id)
	}
}

func runTokenKeep(t *testing.T, open func(*testing.T) plugins.Storage) {
	// Each case gets a user of its own with four tokens: 1 used last, then
	// 2, 3 and 4 (created in another order); bob's tokens must never move.
	tests := []struct {
		name string
		keep int
		// ties: tokens 3 and 4 were last used at the same time; 3 was
		// created later, so it counts as more recently used.
		ties bool
		want []int // what UserTokens lists, by token number (0: the new one)
	}{
		{"room for all", 10, false, []int{0, 1, 2, 3, 4}},
		{"exactly full", 5, false, []int{0, 1, 2, 3, 4}},
		{"one too many", 4, false, []int{0, 1, 2, 3}},
		{"least recently used go first", 3, false, []int{0, 1, 2}},
		{"only the new one", 1, false, []int{0}},
		{"ties by creation", 4, true, []int{0, 1, 2, 3}},
		{"none", 0, false, nil},
	}
	users := make([]string, len(tests))
	for i := range tests {
		users[i] = fmt.Sprintf("user%d", i)
	}
	h := newTokensTester(t, open, append(users, "bob")...)
	h.add(tok(900, "bob", 0, 0), 100)
	h.add(tok(901, "bob", 1, 1), 100)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := h.in(t)
			u, base := users[i], 1000*(i+1)
			olds := []plugins.Token{
				tok(base+1, u, 40, 400), // created last but one, used last
				tok(base+2, u, 10, 300),
				tok(base+3, u, 30, 200),
				tok(base+4, u, 20, 100), // the least recently used
			}
			if tt.ties {
				olds[3].LastUsed = olds[2].LastUsed // created before 3
			}
			for _, o := range olds {
				h.add(o, 100)
			}
			h.add(tok(base, u, 500, 500), tt.keep)
			want := make([]string, len(tt.want))
			for j, n := range tt.want {
				want[j] = tokenID(base + n)
			}
			h.checkUserTokens(u, want...)
			for n := 0; n <= 4; n++ {
				if !slices.Contains(tt.want, n) {
					h.checkGone(tokenID(base + n))
				}
			}
		})
	}
	h.checkUserTokens("bob", tokenID(901), tokenID(900))
}

func runTokenTouch(t *testing.T, open func(*testing.T) plugins.Storage) {
	h := newTokensTester(t, open, "alice", "bob")
	a, b := tok(1, "alice", 0, 10), tok(2, "bob", 0, 10)
	h.add(a, 100)
	h.add(b, 100)
	h.touch() // nothing to do
	h.checkToken(a)

	tests := []struct {
		name string
		uses []plugins.TokenUse
		want int64 // a's LastUsed after, minus ts0
	}{
		{"forward", []plugins.TokenUse{{ID: a.ID, TS: ts0 + 20}}, 20},
		{"back is ignored", []plugins.TokenUse{{ID: a.ID, TS: ts0 + 15}}, 20},
		{"the same time", []plugins.TokenUse{{ID: a.ID, TS: ts0 + 20}}, 20},
		{"unknown ids are ignored", []plugins.TokenUse{{ID: tokenID(99), TS: ts0 + 30}, {ID: a.ID, TS: ts0 + 30}, {ID: "", TS: ts0 + 31}}, 30},
		{"twice in a batch, later first", []plugins.TokenUse{{ID: a.ID, TS: ts0 + 50}, {ID: a.ID, TS: ts0 + 40}}, 50},
		{"twice in a batch, later last", []plugins.TokenUse{{ID: a.ID, TS: ts0 + 60}, {ID: a.ID, TS: ts0 + 70}}, 70},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := h.in(t)
			h.touch(tt.uses...)
			want := a
			want.LastUsed = ts0 + tt.want
			h.checkToken(want) // only LastUsed changes
		})
	}
	h.checkToken(b) // untouched

	// A touch makes a token the most recently used: it lists first, and
	// a trim keeps it.
	c := tok(3, "bob", 5, 80)
	h.add(c, 100)
	h.checkUserTokens("bob", c.ID, b.ID)
	h.touch(plugins.TokenUse{ID: b.ID, TS: ts0 + 90})
	h.checkUserTokens("bob", b.ID, c.ID)
	h.add(tok(4, "bob", 100, 100), 2)
	h.checkUserTokens("bob", tokenID(4), b.ID)
	h.checkGone(c.ID)

	// A revoked token is not brought back by a touch.
	if _, err := h.tk.RevokeTokens(h.ctx(), "bob", []string{b.ID}); err != nil {
		t.Fatal(err)
	}
	h.touch(plugins.TokenUse{ID: b.ID, TS: ts0 + 200})
	h.checkGone(b.ID)
}

func runUserTokens(t *testing.T, open func(*testing.T) plugins.Storage) {
	h := newTokensTester(t, open, "alice", "bob", "carol", "dave")
	ts := []plugins.Token{
		tok(1, "alice", 0, 30),
		tok(2, "alice", 10, 10),
		tok(3, "alice", 20, 50),
		tok(4, "bob", 0, 0),
		tok(5, "carol", 0, 0),
	}
	for _, tk := range ts {
		h.add(tk, 100)
	}
	got := h.userTokens("alice")
	want := []plugins.Token{ts[2], ts[0], ts[1]}
	if !slices.EqualFunc(got, want, equalToken) {
		t.Errorf("UserTokens(alice) = %+v\nwant %+v (most recently used first)", got, want)
	}
	h.touch(plugins.TokenUse{ID: ts[1].ID, TS: ts0 + 60})
	h.checkUserTokens("alice", ts[1].ID, ts[2].ID, ts[0].ID)

	h.deleteUser("carol")
	for _, user := range []string{"dave", "ghost", "Alice", "", "carol"} {
		if got, err := h.tk.UserTokens(h.ctx(), user); err != nil || len(got) != 0 {
			t.Errorf("UserTokens(%q) = %+v, %v; want none", user, got, err)
		}
	}
}

func runTokenRevoke(t *testing.T, open func(*testing.T) plugins.Storage) {
	h := newTokensTester(t, open, "alice", "bob")
	for n := 1; n <= 4; n++ {
		h.add(tok(n, "alice", int64(n), int64(n)), 100)
	}
	h.add(tok(10, "bob", 0, 0), 100)
	h.add(tok(11, "bob", 1, 1), 100)
	a := tokenID

	tests := []struct {
		name      string
		user      string
		ids       []string
		want      int64
		wantAlice []string // alice's tokens after
		wantBob   []string // bob's
	}{
		{"by id; another user's id is left alone", "alice", []string{a(1), a(10), tokenID(99)}, 1,
			[]string{a(4), a(3), a(2)}, []string{a(11), a(10)}},
		{"already gone", "alice", []string{a(1)}, 0, []string{a(4), a(3), a(2)}, []string{a(11), a(10)}},
		{"an id listed twice", "alice", []string{a(2), a(2)}, 1, []string{a(4), a(3)}, []string{a(11), a(10)}},
		{"the other user's", "bob", []string{a(10), a(3)}, 1, []string{a(4), a(3)}, []string{a(11)}},
		{"all", "alice", nil, 2, nil, []string{a(11)}},
		{"all of none", "alice", []string{}, 0, nil, []string{a(11)}},
		{"unknown user", "ghost", nil, 0, nil, []string{a(11)}},
	}
	for _, tt := range tests { // sequential: each starts where the last ended
		t.Run(tt.name, func(t *testing.T) {
			h := h.in(t)
			n, err := h.tk.RevokeTokens(h.ctx(), tt.user, tt.ids)
			if err != nil || n != tt.want {
				t.Errorf("RevokeTokens(%q, %v) = %d, %v; want %d", tt.user, tt.ids, n, err, tt.want)
			}
			h.checkUserTokens("alice", tt.wantAlice...)
			h.checkUserTokens("bob", tt.wantBob...)
			for _, id := range tt.ids {
				if !slices.Contains(tt.wantAlice, id) && !slices.Contains(tt.wantBob, id) {
					h.checkGone(id)
				}
			}
		})
	}
}

func runTokenPurge(t *testing.T, open func(*testing.T) plugins.Storage) {
	h := newTokensTester(t, open, "alice", "bob")
	const now, idle = ts0 + 1000, ts0 + 500 // purge: Expires <= now or LastUsed <= idle
	tests := []struct {
		name            string
		user            string
		lastUsed, expir int64
		purged          bool
	}{
		{"live", "alice", idle + 1, now + 1, false},
		{"expires now", "alice", idle + 1, now, true},
		{"expired", "bob", idle + 100, now - 1, true},
		{"idle since the limit", "alice", idle, now + 1, true},
		{"idle longer", "bob", idle - 100, now + 1000, true},
		{"both", "alice", idle - 1, now - 1, true},
		{"used after the limit", "bob", now + 5, now + 1000, false},
	}
	for i, tt := range tests {
		tk := tok(i, tt.user, 0, 0)
		tk.LastUsed, tk.Expires = tt.lastUsed, tt.expir
		h.add(tk, 100)
	}
	var wantPurged int64
	for _, tt := range tests {
		if tt.purged {
			wantPurged++
		}
	}
	if n, err := h.tk.PurgeTokens(h.ctx(), now, idle); err != nil || n != wantPurged {
		t.Errorf("PurgeTokens = %d, %v; want %d", n, err, wantPurged)
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := h.in(t)
			got, err := h.tk.Token(h.ctx(), tokenID(i))
			if tt.purged != errors.Is(err, plugins.ErrNoToken) || !tt.purged && err != nil {
				t.Errorf("Token of %+v after PurgeTokens = %+v, %v; want purged %v", tt, got, err, tt.purged)
			}
		})
	}
	if n, err := h.tk.PurgeTokens(h.ctx(), now, idle); err != nil || n != 0 {
		t.Errorf("PurgeTokens again = %d, %v; want 0", n, err)
	}
}

func runTokenPasswordChange(t *testing.T, open func(*testing.T) plugins.Storage) {
	h := newTokensTester(t, open, "alice", "bob")
	h.add(tok(1, "alice", 0, 0), 100)
	h.add(tok(2, "alice", 1, 1), 100)
	h.add(tok(3, "bob", 0, 0), 100)

	// A refused change revokes nothing.
	if err := h.st.SetPasswordHash(h.ctx(), "ghost", "h"); !errors.Is(err, plugins.ErrUnknownUser) {
		t.Fatalf("SetPasswordHash(ghost) = %v, want ErrUnknownUser", err)
	}
	h.checkUserTokens("alice", tokenID(2), tokenID(1))

	if err := h.st.SetPasswordHash(h.ctx(), "alice", "new-alice"); err != nil {
		t.Fatalf("SetPasswordHash(alice): %v", err)
	}
	h.checkUserTokens("alice")
	h.checkGone(tokenID(1))
	h.checkGone(tokenID(2))
	h.checkToken(tok(3, "bob", 0, 0))
	if got, err := h.st.PasswordHash(h.ctx(), "alice"); err != nil || got != "new-alice" {
		t.Errorf("PasswordHash(alice) = %q, %v; want new-alice", got, err)
	}
	// New tokens after the change are kept.
	h.add(tok(4, "alice", 10, 10), 100)
	h.checkUserTokens("alice", tokenID(4))
}

func runTokenDeletedAccount(t *testing.T, open func(*testing.T) plugins.Storage) {
	h := newTokensTester(t, open, "alice", "bob")
	h.add(tok(1, "alice", 0, 0), 100)
	h.add(tok(2, "alice", 1, 1), 100)
	h.add(tok(3, "bob", 0, 0), 100)

	h.deleteUser("alice")
	h.checkUserTokens("alice")
	h.checkGone(tokenID(1))
	h.checkGone(tokenID(2))
	h.checkToken(tok(3, "bob", 0, 0))
	if err := h.tk.AddToken(h.ctx(), tok(4, "alice", 10, 10), 100); !errors.Is(err, plugins.ErrUnknownUser) {
		t.Errorf("AddToken for a deleted user = %v, want ErrUnknownUser", err)
	}
	h.checkGone(tokenID(4))
	if n, err := h.tk.RevokeTokens(h.ctx(), "alice", nil); err != nil || n != 0 {
		t.Errorf("RevokeTokens(alice) after DeleteUser = %d, %v; want 0", n, err)
	}
}
