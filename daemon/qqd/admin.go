package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/qqchat/qq/admin"
	"github.com/qqchat/qq/admin/adminserver"
	"github.com/qqchat/qq/daemon"
	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/pluginset"
)

// adminBackend is what the admin socket drives: the daemon's data
// methods, the plugins' status and the same reload as SIGHUP. It adapts
// them to the admin API, which owns its types and errors: this is the one
// place that knows both sides.
type adminBackend struct {
	d        *daemon.Server
	statuses func() []plugins.Status // the supervised plugins (pluginset.Live.Statuses)
	reload   func(context.Context) ([]string, error)
	// checkReload is pluginset.Live.CheckReload.
	checkReload func(context.Context) (pluginset.Change, []string, error)
}

var _ adminserver.Backend = adminBackend{}

func (b adminBackend) Sessions() []admin.UserSession {
	ss := b.d.Sessions()
	out := make([]admin.UserSession, len(ss))
	for i, s := range ss {
		out[i] = admin.UserSession{User: s.User, Session: admin.Session{
			ID: s.ID, Remote: s.Remote, Transport: s.Transport, Node: s.Node, Since: s.Since, MsgsIn: s.MsgsIn, MsgsOut: s.MsgsOut,
		}}
	}
	return out
}

func (b adminBackend) Stats() admin.Stats {
	st := b.d.Stats()
	return admin.Stats{
		Version:          daemon.Version(),
		Started:          st.Started,
		Connections:      st.Connections,
		LoggedIn:         st.LoggedIn,
		UsersOnline:      st.UsersOnline,
		Accepted:         st.Accepted,
		MessagesAccepted: st.MessagesAccepted,
		MessagesPushed:   st.MessagesPushed,
	}
}

func (b adminBackend) Kick(user, reason string) int { return b.d.Kick(user, reason) }
func (b adminBackend) Broadcast(text string) int    { return b.d.Broadcast(text) }

func (b adminBackend) Plugins() []admin.Plugin {
	ss := b.statuses()
	out := make([]admin.Plugin, len(ss))
	for i, s := range ss {
		out[i] = admin.Plugin{
			Name: s.Name, Kind: string(s.Kind), Up: s.Up, Pid: s.Pid, Since: s.Since,
			Restarts: s.Restarts, LastError: s.LastErr,
		}
	}
	return out
}

func (b adminBackend) Reload(ctx context.Context) ([]string, error) { return b.reload(ctx) }

func (b adminBackend) CheckReload(ctx context.Context) (admin.ReloadCheckReply, error) {
	c, needsRestart, err := b.checkReload(ctx)
	if err != nil {
		return admin.ReloadCheckReply{}, err
	}
	return admin.ReloadCheckReply{NeedsRestart: needsRestart, StorageRestarted: c.Storage,
		FiltersStarted: c.FiltersStarted, FiltersKept: c.FiltersKept, FiltersStopped: c.FiltersStopped}, nil
}

func (b adminBackend) AddAccount(ctx context.Context, user, password string) error {
	return adminAccountError(b.d.AddAccount(ctx, user, password))
}

func (b adminBackend) RemoveAccount(ctx context.Context, user string) (int64, error) {
	n, err := b.d.RemoveAccount(ctx, user)
	return n, adminAccountError(err)
}

func (b adminBackend) SetPassword(ctx context.Context, user, password string) error {
	return adminAccountError(b.d.SetPassword(ctx, user, password))
}

// adminAccountError maps the daemon's account errors to the admin API's;
// any other error (nil too) is returned as it is. An invalid account keeps
// the daemon's text of the rule it breaks, which the operator sees.
func adminAccountError(err error) error {
	switch {
	case errors.Is(err, daemon.ErrAccountExists):
		return admin.ErrUserExists
	case errors.Is(err, daemon.ErrNoAccount):
		return admin.ErrUnknownUser
	case errors.Is(err, daemon.ErrInvalidAccount):
		return admin.Invalid(strings.TrimPrefix(err.Error(), daemon.ErrInvalidAccount.Error()+": "))
	}
	return err
}

func (b adminBackend) Group(ctx context.Context, id int64) (admin.Group, error) {
	gi, err := b.d.Group(ctx, id)
	if err != nil {
		return admin.Group{}, adminGroupError(err)
	}
	return adminGroup(gi), nil
}

func (b adminBackend) UserGroups(ctx context.Context, user string) ([]admin.Group, error) {
	ugs, err := b.d.UserGroups(ctx, user)
	if err != nil {
		return nil, adminGroupError(err)
	}
	out := make([]admin.Group, len(ugs))
	for i, ug := range ugs {
		out[i] = adminGroup(ug.GroupInfo)
		out[i].Role = string(ug.Role)
	}
	return out, nil
}

func (b adminBackend) GroupMembers(ctx context.Context, id int64, after string, limit int) ([]admin.GroupMember, bool, error) {
	ms, more, err := b.d.GroupMembers(ctx, id, after, limit)
	if err != nil {
		return nil, false, adminGroupError(err)
	}
	now := time.Now().UnixMilli()
	out := make([]admin.GroupMember, len(ms))
	for i, m := range ms {
		out[i] = admin.GroupMember{User: m.User, Role: string(m.Role)}
		if m.MutedUntil > now {
			out[i].MutedUntil = time.UnixMilli(m.MutedUntil).UTC()
		}
	}
	return out, more, nil
}

func (b adminBackend) DissolveGroup(ctx context.Context, id int64) (admin.GroupChangeReply, error) {
	e, err := b.d.DissolveGroup(ctx, id)
	if err != nil {
		return admin.GroupChangeReply{}, adminGroupError(err)
	}
	return admin.GroupChangeReply{Group: strconv.FormatInt(e.Group, 10), Seq: e.Seq, Actor: e.Actor}, nil
}

func (b adminBackend) RemoveGroupMember(ctx context.Context, id int64, user string) (admin.GroupChangeReply, error) {
	e, err := b.d.RemoveGroupMember(ctx, id, user)
	if errors.Is(err, plugins.ErrNotAllowed) {
		return admin.GroupChangeReply{}, fmt.Errorf("%w: %s owns group %d; dissolve the group instead", admin.ErrNotAllowed, user, id)
	}
	if err != nil {
		return admin.GroupChangeReply{}, adminGroupError(err)
	}
	return admin.GroupChangeReply{Group: strconv.FormatInt(e.Group, 10), Seq: e.Seq, Actor: e.Actor}, nil
}

func adminGroup(gi plugins.GroupInfo) admin.Group {
	return admin.Group{
		Group: strconv.FormatInt(gi.ID, 10), Name: gi.Name, Owner: gi.Owner, Policy: string(gi.Policy),
		History: string(gi.History), MuteAll: gi.MuteAll, Members: gi.Members, LastSeq: gi.LastSeq, Dissolved: gi.Dissolved,
	}
}

// adminGroupError maps the daemon's and the storage's group errors to the
// admin API's; any other error (nil too) is returned as it is.
func adminGroupError(err error) error {
	switch {
	case errors.Is(err, daemon.ErrNoGroups):
		return admin.ErrGroupsOff
	case errors.Is(err, plugins.ErrNoGroup):
		return admin.ErrNoGroup
	case errors.Is(err, plugins.ErrNotMember):
		return admin.ErrNotMember
	case errors.Is(err, plugins.ErrUnknownUser):
		return admin.ErrUnknownUser
	case errors.Is(err, plugins.ErrNotAllowed):
		return fmt.Errorf("%w: %v", admin.ErrNotAllowed, err)
	}
	return err
}

// UserTokens and RevokeTokens ignore ctx: the daemon bounds its storage
// calls with storage.timeout itself.
func (b adminBackend) UserTokens(ctx context.Context, user string) ([]admin.Token, error) {
	ts, err := b.d.UserTokens(user)
	if err != nil {
		return nil, adminTokenError(err)
	}
	out := make([]admin.Token, len(ts))
	for i, t := range ts {
		out[i] = admin.Token{ID: t.ID, Created: time.UnixMilli(t.Created).UTC(),
			LastUsed: time.UnixMilli(t.LastUsed).UTC(), Expires: time.UnixMilli(t.Expires).UTC()}
	}
	return out, nil
}

func (b adminBackend) RevokeTokens(ctx context.Context, user string, ids []string) (int64, error) {
	n, err := b.d.RevokeTokens(user, ids)
	return n, adminTokenError(err)
}

// adminTokenError maps the daemon's "no tokens" to the admin API's; any
// other error (nil too) is returned as it is.
func adminTokenError(err error) error {
	if errors.Is(err, daemon.ErrNoTokens) {
		return admin.ErrTokensOff
	}
	return err
}

func (b adminBackend) Backup(ctx context.Context, dir string) (admin.BackupReply, error) {
	r, err := b.d.Backup(ctx, dir)
	switch {
	case errors.Is(err, daemon.ErrBackupDir):
		return admin.BackupReply{}, admin.Invalid("dir must be an absolute path")
	case errors.Is(err, daemon.ErrBackupExists):
		return admin.BackupReply{}, admin.ErrBackupExists
	case errors.Is(err, daemon.ErrBackupBusy):
		return admin.BackupReply{}, admin.ErrBackupBusy
	case errors.Is(err, daemon.ErrBackupUnsupported):
		return admin.BackupReply{}, admin.ErrBackupUnsupported
	case err != nil:
		return admin.BackupReply{}, err
	}
	return admin.BackupReply{Dir: r.Dir, DurationMS: r.Duration.Milliseconds(), Bytes: r.Bytes, Files: r.Files}, nil
}
