package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/qqchat/qq/daemon/protocol"
)

// This file holds the requests of qqd's groups extension (docs/protocol.md,
// "Groups"). A group is named by its id, a string of digits the server
// assigns (compare it as a string). Operations that append an entry to
// the group's log return the entry's seq; the entry itself is pushed to
// the other members (and to this user's other connections) as a
// group_entry Event, not to the connection that asked.

// Join policies and history visibilities of CreateGroup and
// GroupSettings, and the roles of GroupRole.
const (
	PolicyOpen     = "open"     // anyone joins
	PolicyApproval = "approval" // a request an admin approves
	PolicyInvite   = "invite"   // only by an admin's invitation

	HistoryJoined = "joined" // members see the log from their join on
	HistoryShared = "shared" // members see the whole log

	RoleOwner  = "owner"
	RoleAdmin  = "admin"
	RoleMember = "member"
)

// MentionAll mentions every member of a group (admins and the owner only).
const MentionAll = "all"

// GroupSendResult is the ok to a group message.
type GroupSendResult struct {
	Group string
	Seq   int64 // the message's entry in the group's log
	TS    int64 // unix milliseconds
	MsgID string
	// Body is the stored body when it differs from the body sent (a
	// filter rewrote it), otherwise "".
	Body string
}

// GroupInfo describes a live group (the group_info reply).
type GroupInfo struct {
	Group   string
	Name    string
	Owner   string
	Policy  string // PolicyOpen, PolicyApproval or PolicyInvite
	History string // HistoryJoined or HistoryShared
	MuteAll bool   // everyone but admins is muted
	Members int
	LastSeq int64
}

// CreateGroup creates a group owned by this user and returns its id.
// policy and history may be "" for the server's defaults (open, joined).
func (c *Client) CreateGroup(ctx context.Context, name, policy, history string) (group string, err error) {
	f, err := c.call(ctx, protocol.TypeGroupCreate, func(fb protocol.Frame) protocol.Frame {
		fb = fb.Str("name", name)
		if policy != "" {
			fb = fb.Str("policy", policy)
		}
		if history != "" {
			fb = fb.Str("history", history)
		}
		return fb
	})
	if err != nil {
		return "", err
	}
	return f.GroupEntry.Group, nil
}

// GroupSend sends body to group, mentioning the users named (or
// MentionAll). Every call is a new message; use GroupSendCID for retries
// that must not duplicate.
func (c *Client) GroupSend(ctx context.Context, group, body string, mentions ...string) (GroupSendResult, error) {
	return c.GroupSendCID(ctx, group, body, "", mentions...)
}

// GroupSendCID is GroupSend with the client id cid, which makes a retry
// safe: the server answers a repeated (sender, cid) with the first send's
// result. An empty cid is omitted.
func (c *Client) GroupSendCID(ctx context.Context, group, body, cid string, mentions ...string) (GroupSendResult, error) {
	return c.groupSendCID(ctx, group, body, cid, false, mentions)
}

// GroupSendFirst is GroupSendCID for the first send of cid, which must
// not be empty: see SendFirst.
func (c *Client) GroupSendFirst(ctx context.Context, group, body, cid string, mentions ...string) (GroupSendResult, error) {
	if cid == "" {
		return GroupSendResult{}, errors.New("group send first: empty cid")
	}
	return c.groupSendCID(ctx, group, body, cid, true, mentions)
}

func (c *Client) groupSendCID(ctx context.Context, group, body, cid string, first bool, mentions []string) (GroupSendResult, error) {
	f, err := c.call(ctx, protocol.TypeGroupSend, func(fb protocol.Frame) protocol.Frame {
		fb = fb.Str("group", group).Str("body", body)
		if cid != "" {
			fb = fb.Str("cid", cid)
		}
		if first {
			fb = fb.Bool("first", true)
		}
		if len(mentions) > 0 {
			fb = fb.Strings("mentions", mentions)
		}
		return fb
	})
	if err != nil {
		return GroupSendResult{}, err
	}
	r := GroupSendResult{Group: f.GroupEntry.Group, Seq: f.Seq, TS: f.TS, MsgID: f.MsgID}
	if f.Body != "" && f.Body != body {
		r.Body = f.Body
	}
	return r, nil
}

// GroupAck moves this user's read cursor of group forward to seq:
// everything up to it is read. A seq at or below the cursor changes
// nothing.
func (c *Client) GroupAck(ctx context.Context, group string, seq int64) error {
	_, err := c.call(ctx, protocol.TypeGroupAck, func(fb protocol.Frame) protocol.Frame {
		return fb.Str("group", group).Int("seq", seq)
	})
	return err
}

// GroupSync returns the entries of group after seq after that this user
// may see, oldest first, and whether more follow: catching up from the
// read cursor (Groups' ReadSeq). limit <= 0 means the server's default.
func (c *Client) GroupSync(ctx context.Context, group string, after int64, limit int) ([]protocol.GroupEntry, bool, error) {
	f, err := c.call(ctx, protocol.TypeGroupSync, func(fb protocol.Frame) protocol.Frame {
		fb = fb.Str("group", group).Int("after", after)
		if limit > 0 {
			fb = fb.Int("limit", int64(limit))
		}
		return fb
	})
	if err != nil {
		return nil, false, err
	}
	return orEmpty(f.Entries), f.More, nil
}

// GroupHistory returns a page of group's log, oldest first: the entries
// just before seq before, or the newest when before is 0. more reports
// whether older entries (that this user may see) exist. limit <= 0 means
// the server's default.
func (c *Client) GroupHistory(ctx context.Context, group string, before int64, limit int) ([]protocol.GroupEntry, bool, error) {
	f, err := c.call(ctx, protocol.TypeGroupHistory, func(fb protocol.Frame) protocol.Frame {
		fb = fb.Str("group", group)
		if before > 0 {
			fb = fb.Int("before", before)
		}
		if limit > 0 {
			fb = fb.Int("limit", int64(limit))
		}
		return fb
	})
	if err != nil {
		return nil, false, err
	}
	return orEmpty(f.Entries), f.More, nil
}

// Groups returns the live groups this user belongs to, with their read
// positions: Unread entries after ReadSeq, Mentions of this user (or all)
// among them.
func (c *Client) Groups(ctx context.Context) ([]protocol.GroupListing, error) {
	f, err := c.call(ctx, protocol.TypeGroups, nil)
	if err != nil {
		return nil, err
	}
	return orEmpty(f.Groups), nil
}

// GroupInfo describes a live group.
func (c *Client) GroupInfo(ctx context.Context, group string) (*GroupInfo, error) {
	f, err := c.groupCall(ctx, protocol.TypeGroupInfo, group)
	if err != nil {
		return nil, err
	}
	gi := &GroupInfo{Group: f.GroupEntry.Group, Name: f.GroupEntry.Name, Owner: f.Owner, Policy: f.Policy,
		History: f.History, MuteAll: f.MuteAll, LastSeq: f.LastSeq}
	if len(f.Members) > 0 {
		if err := json.Unmarshal(f.Members, &gi.Members); err != nil {
			return nil, fmt.Errorf("client: group_info reply: members: %w", err)
		}
	}
	return gi, nil
}

// GroupMembers returns a page of group's members by name, those after the
// name after ("" for the first page), and whether more follow. limit <= 0
// means the server's default.
func (c *Client) GroupMembers(ctx context.Context, group, after string, limit int) ([]protocol.GroupMember, bool, error) {
	f, err := c.call(ctx, protocol.TypeGroupMembers, func(fb protocol.Frame) protocol.Frame {
		fb = fb.Str("group", group)
		if after != "" {
			fb = fb.Str("after", after)
		}
		if limit > 0 {
			fb = fb.Int("limit", int64(limit))
		}
		return fb
	})
	if err != nil {
		return nil, false, err
	}
	ms := []protocol.GroupMember{}
	if len(f.Members) > 0 {
		if err := json.Unmarshal(f.Members, &ms); err != nil {
			return nil, false, fmt.Errorf("client: group_members reply: members: %w", err)
		}
	}
	return ms, f.More, nil
}

// GroupRequests returns the pending requests to join group, oldest first
// (for its admins and owner).
func (c *Client) GroupRequests(ctx context.Context, group string) ([]protocol.GroupRequest, error) {
	f, err := c.groupCall(ctx, protocol.TypeGroupRequests, group)
	if err != nil {
		return nil, err
	}
	return orEmpty(f.Requests), nil
}

// GroupJoin joins group. joined is true when this user is a member now
// (seq is their joined entry); false when the group takes requests: the
// request waits for an admin's answer (a joined entry then arrives as an
// Event).
func (c *Client) GroupJoin(ctx context.Context, group string) (joined bool, seq int64, err error) {
	f, err := c.groupCall(ctx, protocol.TypeGroupJoin, group)
	if err != nil {
		return false, 0, err
	}
	return f.Status != "requested", f.Seq, nil
}

// GroupInvite adds user to group (admins and the owner may): the user is a
// member at once.
func (c *Client) GroupInvite(ctx context.Context, group, user string) (seq int64, err error) {
	return c.groupOp(ctx, protocol.TypeGroupInvite, group, func(fb protocol.Frame) protocol.Frame { return fb.Str("user", user) })
}

// GroupApprove approves user's request to join group.
func (c *Client) GroupApprove(ctx context.Context, group, user string) (seq int64, err error) {
	return c.groupOp(ctx, protocol.TypeGroupApprove, group, func(fb protocol.Frame) protocol.Frame { return fb.Str("user", user) })
}

// GroupReject refuses user's request to join group.
func (c *Client) GroupReject(ctx context.Context, group, user string) error {
	_, err := c.groupOp(ctx, protocol.TypeGroupReject, group, func(fb protocol.Frame) protocol.Frame { return fb.Str("user", user) })
	return err
}

// GroupLeave leaves group (its owner transfers it first).
func (c *Client) GroupLeave(ctx context.Context, group string) (seq int64, err error) {
	return c.groupOp(ctx, protocol.TypeGroupLeave, group, nil)
}

// GroupKick removes user from group.
func (c *Client) GroupKick(ctx context.Context, group, user string) (seq int64, err error) {
	return c.groupOp(ctx, protocol.TypeGroupKick, group, func(fb protocol.Frame) protocol.Frame { return fb.Str("user", user) })
}

// GroupRole makes user an admin (RoleAdmin) or a plain member
// (RoleMember) of group; the owner only.
func (c *Client) GroupRole(ctx context.Context, group, user, role string) (seq int64, err error) {
	return c.groupOp(ctx, protocol.TypeGroupRole, group, func(fb protocol.Frame) protocol.Frame {
		return fb.Str("user", user).Str("role", role)
	})
}

// GroupTransfer makes user, a member, the owner of group; this user, the
// owner, becomes an admin.
func (c *Client) GroupTransfer(ctx context.Context, group, user string) (seq int64, err error) {
	return c.groupOp(ctx, protocol.TypeGroupTransfer, group, func(fb protocol.Frame) protocol.Frame { return fb.Str("user", user) })
}

// GroupRename renames group.
func (c *Client) GroupRename(ctx context.Context, group, name string) (seq int64, err error) {
	return c.groupOp(ctx, protocol.TypeGroupRename, group, func(fb protocol.Frame) protocol.Frame { return fb.Str("name", name) })
}

// GroupMute mutes user in group for d, rounded up to whole seconds (at
// most a year); d <= 0 unmutes.
func (c *Client) GroupMute(ctx context.Context, group, user string, d time.Duration) (seq int64, err error) {
	secs := int64(0)
	if d > 0 {
		secs = int64((d + time.Second - 1) / time.Second)
	}
	return c.groupOp(ctx, protocol.TypeGroupMute, group, func(fb protocol.Frame) protocol.Frame {
		return fb.Str("user", user).Int("seconds", secs)
	})
}

// GroupMuteAll mutes everyone in group but its admins (on), or lifts
// that.
func (c *Client) GroupMuteAll(ctx context.Context, group string, on bool) (seq int64, err error) {
	return c.groupOp(ctx, protocol.TypeGroupMuteAll, group, func(fb protocol.Frame) protocol.Frame { return fb.Bool("on", on) })
}

// GroupSettings sets group's join policy and history visibility; "" keeps
// either. The owner only.
func (c *Client) GroupSettings(ctx context.Context, group, policy, history string) (seq int64, err error) {
	return c.groupOp(ctx, protocol.TypeGroupSettings, group, func(fb protocol.Frame) protocol.Frame {
		if policy != "" {
			fb = fb.Str("policy", policy)
		}
		if history != "" {
			fb = fb.Str("history", history)
		}
		return fb
	})
}

// GroupDissolve dissolves group: its dissolved entry is the last. The
// owner only.
func (c *Client) GroupDissolve(ctx context.Context, group string) (seq int64, err error) {
	return c.groupOp(ctx, protocol.TypeGroupDissolve, group, nil)
}

// groupCall sends a request whose only field is group.
func (c *Client) groupCall(ctx context.Context, t protocol.Type, group string) (*frame, error) {
	return c.call(ctx, t, func(fb protocol.Frame) protocol.Frame { return fb.Str("group", group) })
}

// groupOp sends an operation on group, with the fields more adds (more
// may be nil), and returns the seq of the entry it appended.
func (c *Client) groupOp(ctx context.Context, t protocol.Type, group string, more func(protocol.Frame) protocol.Frame) (int64, error) {
	f, err := c.call(ctx, t, func(fb protocol.Frame) protocol.Frame {
		fb = fb.Str("group", group)
		if more != nil {
			fb = more(fb)
		}
		return fb
	})
	if err != nil {
		return 0, err
	}
	return f.Seq, nil
}
