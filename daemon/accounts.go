package daemon

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/qqchat/qq/daemon/password"
	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
)

// memRelease is the state of the hash memory release (see hashSlot).
type memRelease struct {
	memMu      sync.Mutex
	memTimer   *time.Timer
	memStopped bool
}

// Account errors of AddAccount, RemoveAccount and SetPassword, for
// operators' tools. Test with errors.Is.
var (
	// ErrInvalidAccount wraps a message saying which rule a user name or
	// password breaks.
	ErrInvalidAccount = errors.New("invalid account")
	// ErrAccountExists: the user name is taken.
	ErrAccountExists = errors.New("account exists")
	// ErrNoAccount: there is no such user.
	ErrNoAccount = errors.New("no such account")
)

// Registration rules, as human text for errors.
const userRule = "user must be 1-32 bytes of a-z, 0-9, '_', '.', '-', starting with a letter or digit"

// passwordRule says how pw breaks the password rules, or "".
func (s *Server) passwordRule(pw string) string {
	minPW := s.cfg.Accounts.MinPasswordBytes
	if len(pw) < minPW || len(pw) > protocol.MaxPasswordBytes || !utf8.ValidString(pw) {
		return fmt.Sprintf("password must be %d to %d bytes of UTF-8", minPW, protocol.MaxPasswordBytes)
	}
	return ""
}

// accountRules says which rule of registration user or pw breaks, or "".
func (s *Server) accountRules(user, pw string) string {
	if !protocol.ValidUser(user) {
		return userRule
	}
	return s.passwordRule(pw)
}

// hash computes a password hash within the server's hashing bound.
func (s *Server) hash(pw string) (string, error) {
	defer s.hashSlot()()
	return password.Hash(s.pwp, pw)
}

// registerHash is hash for a registration over the wire: registrations
// hold at most half of the hash_concurrency slots (at least one), so that
// a flood of them leaves the other half to logins. (Measured before this:
// 2,000 registrations from 200 addresses, 64 at a time, held every slot
// and a password login took 1.6 s; docs/operations.md, "Exhaustion".)
func (s *Server) registerHash(pw string) (string, error) {
	s.registerSem <- struct{}{}
	defer func() { <-s.registerSem }()
	return s.hash(pw)
}

// memoryReleaseDelay is how long after the last password hash the memory
// of the hashes is given back to the operating system.
const memoryReleaseDelay = 2 * time.Second

// hashSlot waits for one of the hash_concurrency slots, for one Argon2id
// computation (a hash or a verification; qqd_password_hashes_total counts
// them), and returns the function that frees it. Each Argon2id computation allocates 19 MiB that
// the Go runtime keeps mapped long after (it only returns memory it has
// not needed for minutes), so a burst of logins would leave qqd's RSS tens
// of MiB higher: once hashing has been quiet for memoryReleaseDelay, the
// memory is handed back (one debounced server-wide timer).
func (s *Server) hashSlot() func() {
	s.hashSem <- struct{}{}
	s.m.passwordHashes.Inc()
	return func() {
		<-s.hashSem
		s.memMu.Lock()
		defer s.memMu.Unlock()
		if s.memStopped {
			return
		}
		if s.memTimer == nil {
			s.memTimer = time.AfterFunc(memoryReleaseDelay, s.releaseHashMemory)
		} else {
			s.memTimer.Reset(memoryReleaseDelay)
		}
	}
}

func (s *Server) releaseHashMemory() {
	if len(s.hashSem) == 0 {
		debug.FreeOSMemory()
	}
}

// stopMemoryRelease stops the release timer (at shutdown).
func (s *Server) stopMemoryRelease() {
	s.memMu.Lock()
	defer s.memMu.Unlock()
	s.memStopped = true
	if s.memTimer != nil {
		s.memTimer.Stop()
	}
}

// withStorage runs fn on the storage in service with the storage timeout.
func (s *Server) withStorage(ctx context.Context, fn func(context.Context, plugins.Storage) error) error {
	ps := s.acquirePlugs()
	defer ps.release()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Storage.Timeout)
	defer cancel()
	return fn(ctx, ps.storage)
}

// AddAccount creates an account with the rules of register, whether or not
// registration is open.
func (s *Server) AddAccount(ctx context.Context, user, pw string) error {
	if why := s.accountRules(user, pw); why != "" {
		return fmt.Errorf("%w: %s", ErrInvalidAccount, why)
	}
	h, err := s.hash(pw)
	if err != nil {
		return fmt.Errorf("add account: %w", err)
	}
	err = s.withStorage(ctx, func(ctx context.Context, st plugins.Storage) error { return st.CreateUser(ctx, user, h) })
	if errors.Is(err, plugins.ErrUserExists) {
		return ErrAccountExists
	}
	if err != nil {
		return fmt.Errorf("add account: %w", err)
	}
	s.log.Info("account added by an operator", "user", user)
	return nil
}

// SetPassword replaces user's password. Sessions already logged in stay.
func (s *Server) SetPassword(ctx context.Context, user, pw string) error {
	if why := s.passwordRule(pw); why != "" {
		return fmt.Errorf("%w: %s", ErrInvalidAccount, why)
	}
	h, err := s.hash(pw)
	if err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	err = s.withStorage(ctx, func(ctx context.Context, st plugins.Storage) error { return st.SetPasswordHash(ctx, user, h) })
	if errors.Is(err, plugins.ErrUnknownUser) {
		return ErrNoAccount
	}
	if err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	s.log.Info("password set by an operator", "user", user)
	return nil
}

// RemoveAccount deletes user's account (see plugins.Storage.DeleteUser)
// and kicks their sessions. It returns how many pending messages were
// dropped.
func (s *Server) RemoveAccount(ctx context.Context, user string) (int64, error) {
	var dropped int64
	err := s.withStorage(ctx, func(ctx context.Context, st plugins.Storage) (err error) {
		dropped, err = st.DeleteUser(ctx, user)
		return err
	})
	if errors.Is(err, plugins.ErrUnknownUser) {
		return 0, ErrNoAccount
	}
	if err != nil {
		return 0, fmt.Errorf("remove account: %w", err)
	}
	kicked := s.Kick(user, "account removed")
	s.log.Info("account removed by an operator", "user", user, "pending_dropped", dropped, "sessions_kicked", kicked)
	return dropped, nil
}
