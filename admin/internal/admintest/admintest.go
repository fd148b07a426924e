// Package admintest provides a fake admin.Backend, a test double of qqd
// for the admin transport's tests and qqadmin's. It records the calls
// made and answers from its fields.
package admintest

import (
	"context"
	"sync"

	"github.com/qqchat/qq/admin"
	"github.com/qqchat/qq/daemon"
	"github.com/qqchat/qq/plugins"
)

// Backend is a fake admin.Backend. Set its fields before use; Calls
// records every call as "Method arg...".
type Backend struct {
	SessionList []daemon.SessionInfo
	StatsValue  daemon.Stats
	PluginList  []plugins.Status
	ReloadErr   error
	// NeedsRestart is what Reload reports.
	NeedsRestart []string
	// Online is the number of sessions per user that Kick reports.
	Online map[string]int
	// BroadcastN is what Broadcast reports.
	BroadcastN int
	// Accounts holds user → password; AccountErr, if set, is returned by
	// every account method instead.
	Accounts   map[string]string
	AccountErr error
	// Pending is what RemoveAccount reports as dropped.
	Pending int64

	mu    sync.Mutex
	calls []string
}

var _ admin.Backend = (*Backend)(nil)

// Calls returns the calls made so far.
func (b *Backend) Calls() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.calls...)
}

func (b *Backend) record(s ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := s[0]
	for _, a := range s[1:] {
		c += " " + a
	}
	b.calls = append(b.calls, c)
}

func (b *Backend) Sessions() []daemon.SessionInfo { b.record("Sessions"); return b.SessionList }
func (b *Backend) Stats() daemon.Stats            { b.record("Stats"); return b.StatsValue }
func (b *Backend) Plugins() []plugins.Status      { b.record("Plugins"); return b.PluginList }

func (b *Backend) Kick(user, reason string) int {
	b.record("Kick", user, reason)
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Online[user]
}

func (b *Backend) Broadcast(text string) int { b.record("Broadcast", text); return b.BroadcastN }

func (b *Backend) Reload(ctx context.Context) ([]string, error) {
	b.record("Reload")
	if b.ReloadErr != nil {
		return nil, b.ReloadErr
	}
	return b.NeedsRestart, nil
}

func (b *Backend) AddAccount(ctx context.Context, user, password string) error {
	b.record("AddAccount", user, password)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.AccountErr != nil {
		return b.AccountErr
	}
	if _, ok := b.Accounts[user]; ok {
		return admin.ErrUserExists
	}
	if len(password) < 8 {
		return admin.Invalid("password must be 8 to 1024 bytes of UTF-8")
	}
	if b.Accounts == nil {
		b.Accounts = map[string]string{}
	}
	b.Accounts[user] = password
	return nil
}

func (b *Backend) RemoveAccount(ctx context.Context, user string) (int64, error) {
	b.record("RemoveAccount", user)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.AccountErr != nil {
		return 0, b.AccountErr
	}
	if _, ok := b.Accounts[user]; !ok {
		return 0, admin.ErrUnknownUser
	}
	delete(b.Accounts, user)
	return b.Pending, nil
}

func (b *Backend) SetPassword(ctx context.Context, user, password string) error {
	b.record("SetPassword", user, password)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.AccountErr != nil {
		return b.AccountErr
	}
	if _, ok := b.Accounts[user]; !ok {
		return admin.ErrUnknownUser
	}
	if len(password) < 8 {
		return admin.Invalid("password must be 8 to 1024 bytes of UTF-8")
	}
	b.Accounts[user] = password
	return nil
}
