package client

import (
	"context"
	"time"

	"github.com/qqchat/qq/daemon/protocol"
)

// This file holds a Session's other requests: each is the Client method
// of the same name on the session's current connection. While the
// session has no connection they fail at once with ErrDisconnected, and
// after it ended with its end; they are not retried (not all of them
// could be retried safely): the application decides, for example after
// the next EventUp. A connection lost during the request fails it with
// the connection's end.

// via runs f on the current connection.
func via[R any](s *Session, f func(*Client) (R, error)) (R, error) {
	c, err := s.conn()
	if err != nil {
		var zero R
		return zero, err
	}
	return f(c)
}

// do runs f on the current connection.
func (s *Session) do(f func(*Client) error) error {
	c, err := s.conn()
	if err != nil {
		return err
	}
	return f(c)
}

// Offline is Client.Offline: it returns the oldest pending messages as
// they are, without regard to what Messages delivered. (The session
// fetches them itself after each login.)
func (s *Session) Offline(ctx context.Context, limit int) ([]protocol.Message, bool, error) {
	c, err := s.conn()
	if err != nil {
		return nil, false, err
	}
	return c.Offline(ctx, limit)
}

// History is Client.History.
func (s *Session) History(ctx context.Context, with, before string, limit int) ([]protocol.Message, bool, error) {
	c, err := s.conn()
	if err != nil {
		return nil, false, err
	}
	return c.History(ctx, with, before, limit)
}

// Users is Client.Users.
func (s *Session) Users(ctx context.Context) ([]string, error) {
	return via(s, func(c *Client) ([]string, error) { return c.Users(ctx) })
}

// Ping is Client.Ping.
func (s *Session) Ping(ctx context.Context) error {
	return s.do(func(c *Client) error { return c.Ping(ctx) })
}

// RequestFriend is Client.RequestFriend.
func (s *Session) RequestFriend(ctx context.Context, to, note string) (friends bool, err error) {
	return via(s, func(c *Client) (bool, error) { return c.RequestFriend(ctx, to, note) })
}

// AcceptFriend is Client.AcceptFriend.
func (s *Session) AcceptFriend(ctx context.Context, user string) error {
	return s.do(func(c *Client) error { return c.AcceptFriend(ctx, user) })
}

// DeclineFriend is Client.DeclineFriend.
func (s *Session) DeclineFriend(ctx context.Context, user string) error {
	return s.do(func(c *Client) error { return c.DeclineFriend(ctx, user) })
}

// CancelFriendRequest is Client.CancelFriendRequest.
func (s *Session) CancelFriendRequest(ctx context.Context, to string) error {
	return s.do(func(c *Client) error { return c.CancelFriendRequest(ctx, to) })
}

// RemoveFriend is Client.RemoveFriend.
func (s *Session) RemoveFriend(ctx context.Context, user string) error {
	return s.do(func(c *Client) error { return c.RemoveFriend(ctx, user) })
}

// Block is Client.Block.
func (s *Session) Block(ctx context.Context, user string) error {
	return s.do(func(c *Client) error { return c.Block(ctx, user) })
}

// Unblock is Client.Unblock.
func (s *Session) Unblock(ctx context.Context, user string) error {
	return s.do(func(c *Client) error { return c.Unblock(ctx, user) })
}

// Friends is Client.Friends.
func (s *Session) Friends(ctx context.Context) (*FriendList, error) {
	return via(s, func(c *Client) (*FriendList, error) { return c.Friends(ctx) })
}

// Blocks is Client.Blocks.
func (s *Session) Blocks(ctx context.Context) ([]string, error) {
	return via(s, func(c *Client) ([]string, error) { return c.Blocks(ctx) })
}

// SetPresence is Client.SetPresence. The session remembers the last
// presence set and sets it again after each reconnect.
func (s *Session) SetPresence(ctx context.Context, state, text string) error {
	err := s.do(func(c *Client) error { return c.SetPresence(ctx, state, text) })
	if err == nil {
		s.mu.Lock()
		s.presence = &[2]string{state, text}
		s.mu.Unlock()
	}
	return err
}

// Typing is Client.Typing.
func (s *Session) Typing(ctx context.Context, to string, typing bool) error {
	return s.do(func(c *Client) error { return c.Typing(ctx, to, typing) })
}

// GroupTyping is Client.GroupTyping.
func (s *Session) GroupTyping(ctx context.Context, group string, typing bool) error {
	return s.do(func(c *Client) error { return c.GroupTyping(ctx, group, typing) })
}

// CreateGroup is Client.CreateGroup.
func (s *Session) CreateGroup(ctx context.Context, name, policy, history string) (group string, err error) {
	return via(s, func(c *Client) (string, error) { return c.CreateGroup(ctx, name, policy, history) })
}

// GroupAck is Client.GroupAck. (Unlike Ack, a group ack is not kept for
// the next login: the read cursor only moves forward, so the next
// GroupAck covers it.)
func (s *Session) GroupAck(ctx context.Context, group string, seq int64) error {
	return s.do(func(c *Client) error { return c.GroupAck(ctx, group, seq) })
}

// GroupSync is Client.GroupSync.
func (s *Session) GroupSync(ctx context.Context, group string, after int64, limit int) ([]protocol.GroupEntry, bool, error) {
	c, err := s.conn()
	if err != nil {
		return nil, false, err
	}
	return c.GroupSync(ctx, group, after, limit)
}

// GroupHistory is Client.GroupHistory.
func (s *Session) GroupHistory(ctx context.Context, group string, before int64, limit int) ([]protocol.GroupEntry, bool, error) {
	c, err := s.conn()
	if err != nil {
		return nil, false, err
	}
	return c.GroupHistory(ctx, group, before, limit)
}

// Groups is Client.Groups.
func (s *Session) Groups(ctx context.Context) ([]protocol.GroupListing, error) {
	return via(s, func(c *Client) ([]protocol.GroupListing, error) { return c.Groups(ctx) })
}

// GroupInfo is Client.GroupInfo.
func (s *Session) GroupInfo(ctx context.Context, group string) (*GroupInfo, error) {
	return via(s, func(c *Client) (*GroupInfo, error) { return c.GroupInfo(ctx, group) })
}

// GroupMembers is Client.GroupMembers.
func (s *Session) GroupMembers(ctx context.Context, group, after string, limit int) ([]protocol.GroupMember, bool, error) {
	c, err := s.conn()
	if err != nil {
		return nil, false, err
	}
	return c.GroupMembers(ctx, group, after, limit)
}

// GroupRequests is Client.GroupRequests.
func (s *Session) GroupRequests(ctx context.Context, group string) ([]protocol.GroupRequest, error) {
	return via(s, func(c *Client) ([]protocol.GroupRequest, error) { return c.GroupRequests(ctx, group) })
}

// GroupJoin is Client.GroupJoin.
func (s *Session) GroupJoin(ctx context.Context, group string) (joined bool, seq int64, err error) {
	c, err := s.conn()
	if err != nil {
		return false, 0, err
	}
	return c.GroupJoin(ctx, group)
}

// GroupInvite is Client.GroupInvite.
func (s *Session) GroupInvite(ctx context.Context, group, user string) (seq int64, err error) {
	return via(s, func(c *Client) (int64, error) { return c.GroupInvite(ctx, group, user) })
}

// GroupApprove is Client.GroupApprove.
func (s *Session) GroupApprove(ctx context.Context, group, user string) (seq int64, err error) {
	return via(s, func(c *Client) (int64, error) { return c.GroupApprove(ctx, group, user) })
}

// GroupReject is Client.GroupReject.
func (s *Session) GroupReject(ctx context.Context, group, user string) error {
	return s.do(func(c *Client) error { return c.GroupReject(ctx, group, user) })
}

// GroupLeave is Client.GroupLeave.
func (s *Session) GroupLeave(ctx context.Context, group string) (seq int64, err error) {
	return via(s, func(c *Client) (int64, error) { return c.GroupLeave(ctx, group) })
}

// GroupKick is Client.GroupKick.
func (s *Session) GroupKick(ctx context.Context, group, user string) (seq int64, err error) {
	return via(s, func(c *Client) (int64, error) { return c.GroupKick(ctx, group, user) })
}

// GroupRole is Client.GroupRole.
func (s *Session) GroupRole(ctx context.Context, group, user, role string) (seq int64, err error) {
	return via(s, func(c *Client) (int64, error) { return c.GroupRole(ctx, group, user, role) })
}

// GroupTransfer is Client.GroupTransfer.
func (s *Session) GroupTransfer(ctx context.Context, group, user string) (seq int64, err error) {
	return via(s, func(c *Client) (int64, error) { return c.GroupTransfer(ctx, group, user) })
}

// GroupRename is Client.GroupRename.
func (s *Session) GroupRename(ctx context.Context, group, name string) (seq int64, err error) {
	return via(s, func(c *Client) (int64, error) { return c.GroupRename(ctx, group, name) })
}

// GroupMute is Client.GroupMute.
func (s *Session) GroupMute(ctx context.Context, group, user string, d time.Duration) (seq int64, err error) {
	return via(s, func(c *Client) (int64, error) { return c.GroupMute(ctx, group, user, d) })
}

// GroupMuteAll is Client.GroupMuteAll.
func (s *Session) GroupMuteAll(ctx context.Context, group string, on bool) (seq int64, err error) {
	return via(s, func(c *Client) (int64, error) { return c.GroupMuteAll(ctx, group, on) })
}

// GroupSettings is Client.GroupSettings.
func (s *Session) GroupSettings(ctx context.Context, group, policy, history string) (seq int64, err error) {
	return via(s, func(c *Client) (int64, error) { return c.GroupSettings(ctx, group, policy, history) })
}

// GroupDissolve is Client.GroupDissolve.
func (s *Session) GroupDissolve(ctx context.Context, group string) (seq int64, err error) {
	return via(s, func(c *Client) (int64, error) { return c.GroupDissolve(ctx, group) })
}
