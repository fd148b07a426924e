package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/qqchat/qq/daemon/groups"
	"github.com/qqchat/qq/daemon/route"
	"github.com/qqchat/qq/plugins"
)

// This file holds the data methods of the groups extension that
// operators' tools (the admin socket) call.
//
// The storage checks every change of a group against its actor's rights,
// and an operator is no member of the group: so an operator's change is
// made in the name of the group's owner, as the owner's own would be, and
// its log entry names the owner as its actor. It is pushed to the members
// online and applied to the daemon's view of the group like a member's.

// ErrNoGroups is the error of the group methods when the storage in
// service keeps no groups (the groups feature is off).
var ErrNoGroups = errors.New("the storage keeps no groups")

// ownerRetries bounds how often an operator's change is tried again when
// the group's ownership passed on between reading the owner and the
// change.
const ownerRetries = 3

// adminGroups returns the storage's Groups side and a context bounding
// one call within ctx; done releases both.
func (s *Server) adminGroups(ctx context.Context) (gs plugins.Groups, cctx context.Context, done func(), err error) {
	ps := s.acquirePlugs()
	if ps.groups == nil {
		ps.release()
		return nil, nil, nil, ErrNoGroups
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.Storage.Timeout)
	return ps.groups, cctx, func() { cancel(); ps.release() }, nil
}

// Group describes group id, a dissolved one too (Dissolved set). Errors:
// ErrNoGroups, plugins.ErrNoGroup.
func (s *Server) Group(ctx context.Context, id int64) (plugins.GroupInfo, error) {
	gs, ctx, done, err := s.adminGroups(ctx)
	if err != nil {
		return plugins.GroupInfo{}, err
	}
	defer done()
	return gs.Group(ctx, id)
}

// UserGroups lists the live groups user belongs to, by id, with user's
// role and read position in each. Errors: ErrNoGroups.
func (s *Server) UserGroups(ctx context.Context, user string) ([]plugins.UserGroup, error) {
	gs, ctx, done, err := s.adminGroups(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	return gs.UserGroups(ctx, user)
}

// GroupMembers lists group id's members by name after after, up to limit
// (at most 1000), and whether more follow; a dissolved group has none.
// Errors: ErrNoGroups, plugins.ErrNoGroup.
func (s *Server) GroupMembers(ctx context.Context, id int64, after string, limit int) ([]plugins.Member, bool, error) {
	gs, ctx, done, err := s.adminGroups(ctx)
	if err != nil {
		return nil, false, err
	}
	defer done()
	return gs.Members(ctx, id, after, min(max(limit, 1), memberPageMax))
}

// DissolveGroup dissolves group id in the name of its owner, and returns
// the dissolved entry. Errors: ErrNoGroups, plugins.ErrNoGroup (no such
// group, or dissolved already).
func (s *Server) DissolveGroup(ctx context.Context, id int64) (plugins.GroupEntry, error) {
	e, err := s.opAsOwner(ctx, id, func(op *plugins.GroupOp, owner string) error {
		op.Kind = plugins.OpDissolve
		return nil
	})
	if err == nil {
		s.log.Info("group dissolved by an operator", "group", id, "owner", e.Actor, "seq", e.Seq)
	}
	return e, err
}

// RemoveGroupMember removes user from group id as a kick by the group's
// owner, and returns the kicked entry. The owner cannot be removed: that
// is plugins.ErrNotAllowed (dissolve the group instead). Errors:
// ErrNoGroups, plugins.ErrNoGroup, plugins.ErrNotMember,
// plugins.ErrUnknownUser, plugins.ErrNotAllowed.
func (s *Server) RemoveGroupMember(ctx context.Context, id int64, user string) (plugins.GroupEntry, error) {
	e, err := s.opAsOwner(ctx, id, func(op *plugins.GroupOp, owner string) error {
		if user == owner {
			return fmt.Errorf("%s owns group %d: %w", user, id, plugins.ErrNotAllowed)
		}
		op.Kind, op.Target = plugins.OpKick, user
		return nil
	})
	if err == nil {
		s.log.Info("group member removed by an operator", "group", id, "user", user, "owner", e.Actor, "seq", e.Seq)
	}
	return e, err
}

// opAsOwner runs the operation set fills in on group id, with the
// group's owner as its actor. When the storage refuses it as not allowed
// because the ownership passed on meanwhile, it tries again as the new
// owner.
func (s *Server) opAsOwner(ctx context.Context, id int64, set func(op *plugins.GroupOp, owner string) error) (plugins.GroupEntry, error) {
	gs, ctx, done, err := s.adminGroups(ctx)
	if err != nil {
		return plugins.GroupEntry{}, err
	}
	defer done()
	for try := 1; ; try++ {
		gi, err := gs.Group(ctx, id)
		if err == nil && gi.Dissolved {
			err = plugins.ErrNoGroup
		}
		if err != nil {
			return plugins.GroupEntry{}, err
		}
		op := plugins.GroupOp{Group: id, Actor: gi.Owner, TS: time.Now().UnixMilli(), Limits: s.groupLimits()}
		if err := set(&op, gi.Owner); err != nil {
			return plugins.GroupEntry{}, err
		}
		res, err := s.applyGroupOp(ctx, gs, op)
		if errors.Is(err, plugins.ErrNotAllowed) && try < ownerRetries {
			if now, gerr := gs.Group(ctx, id); gerr == nil && now.Owner != gi.Owner {
				continue
			}
		}
		if err != nil {
			return plugins.GroupEntry{}, err
		}
		if res.Entry == nil {
			return plugins.GroupEntry{}, fmt.Errorf("group %d: %s appended no entry", id, op.Kind)
		}
		return *res.Entry, nil
	}
}

// applyGroupOp applies op under the group's lock, pushes its entry to
// the members online who see it and applies it to the daemon's view of
// the group, as a member's operation is (see session.groupOp); no
// connection asked, so every member's connections get the push.
func (s *Server) applyGroupOp(ctx context.Context, gs plugins.Groups, op plugins.GroupOp) (plugins.GroupOpResult, error) {
	var res plugins.GroupOpResult
	err := s.groupCache.Do(op.Group, s.loadGroup(gs), func(g *groups.Group) error {
		var err error
		if res, err = gs.GroupOp(ctx, op); err != nil {
			return err
		}
		if e := res.Entry; e != nil {
			s.deliver(gs, g, e, route.AllEpochs, nil)
		}
		return nil
	})
	s.m.groupOps.Inc()
	return res, err
}
