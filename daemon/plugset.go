package daemon

import (
	"context"
	"sync"

	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
)

// plugSet is the storage and filter chain in use. Calls hold it with
// acquire/release; SwapPlugins replaces it and waits until no call holds
// the old one, so the caller can then stop the old plugins safely.
type plugSet struct {
	storage plugins.Storage      // rawStorage, instrumented
	filters []plugins.FilterLink // rawFilters, instrumented
	// rawStorage and rawFilters are the caller's, as given.
	rawStorage plugins.Storage
	rawFilters []plugins.FilterLink
	// social is the storage's Social side (instrumented), nil when it has
	// none: the friends, presence and typing features are then off.
	social plugins.Social
	// groups is the storage's Groups side (instrumented), nil when it has
	// none: the groups feature is then off.
	groups plugins.Groups
	// tokens is the storage's Tokens side (instrumented), nil when it has
	// none or tokens.enabled is false: the resume feature is then off.
	tokens plugins.Tokens
	// hello is the hello frame for connections accepted while this set is
	// in service: it lists the features the storage supports.
	hello []byte
	inUse sync.RWMutex
}

// plugs returns the current plugin set, held until release.
func (s *Server) acquirePlugs() *plugSet {
	for {
		ps := s.plugs.Load()
		ps.inUse.RLock()
		if s.plugs.Load() == ps {
			return ps
		}
		ps.inUse.RUnlock() // swapped meanwhile: take the new one
	}
}

func (ps *plugSet) release() { ps.inUse.RUnlock() }

// newPlugSet instruments storage and filters and works out what the
// storage supports.
func (s *Server) newPlugSet(storage plugins.Storage, filters []plugins.FilterLink) *plugSet {
	ps := s.m.plugSet(storage, filters)
	var features []string
	if so, ok := plugins.SocialOf(ps.storage); ok {
		ps.social = so
		features = []string{protocol.FeatureFriends, protocol.FeaturePresence, protocol.FeatureTyping}
	}
	if g, ok := plugins.GroupsOf(ps.storage); ok {
		ps.groups = g
		features = append(features, protocol.FeatureGroups)
	}
	if t, ok := plugins.TokensOf(ps.storage); ok && s.cfg.Tokens.Enabled {
		ps.tokens = t
		features = append(features, protocol.FeatureResume)
	}
	ps.hello = protocol.AppendHello(nil, "qqd", s.version, features...)
	return ps
}

// SwapPlugins puts storage and filters in service for every call that
// starts from now on, waits until calls still using the previous set have
// finished (bounded by ctx), and returns the previous set for the caller
// to stop. No connection is touched. A nil storage keeps the current one.
func (s *Server) SwapPlugins(ctx context.Context, storage plugins.Storage, filters []plugins.FilterLink) (oldStorage plugins.Storage, oldFilters []plugins.FilterLink, err error) {
	s.swapMu.Lock()
	defer s.swapMu.Unlock()
	old := s.plugs.Load()
	if storage == nil {
		storage = old.rawStorage
	}
	s.plugs.Store(s.newPlugSet(storage, filters))
	drained := make(chan struct{})
	go func() {
		old.inUse.Lock() // every holder of the old set has released it
		//lint:ignore SA2001 empty on purpose: taking the lock is the wait for the old set's readers to drain
		old.inUse.Unlock()
		close(drained)
	}()
	select {
	case <-drained:
	case <-ctx.Done():
		err = ctx.Err()
	}
	s.log.Info("plugins swapped", "filters", filterNames(filters))
	return old.rawStorage, old.rawFilters, err
}

// Plugins returns the storage and filter chain in service now.
func (s *Server) Plugins() (plugins.Storage, []plugins.FilterLink) {
	ps := s.plugs.Load()
	return ps.rawStorage, ps.rawFilters
}

func filterNames(fs []plugins.FilterLink) []string {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.Name
	}
	return names
}
