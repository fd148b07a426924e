package client

import (
	"context"
	"slices"

	"github.com/qqchat/qq/daemon/protocol"
)

// Events returns the pushes other than messages, in the order the server
// sent them, when Options.Events was set; otherwise a closed channel. It
// is closed after the connection has ended and every queued event was
// received, or after Close.
func (c *Client) Events() <-chan Event { return c.evs }

// Has reports whether the server listed feature (protocol.Feature*) in
// its hello.
func (c *Client) Has(feature string) bool { return slices.Contains(c.hello.Features, feature) }

// FriendList is the reply to Friends.
type FriendList struct {
	// Friends, by name, with their presence as the server shows it.
	Friends []protocol.FriendEntry
	// Incoming requests (From set) and outgoing ones (To set), oldest
	// first.
	Incoming, Outgoing []protocol.FriendRequest
}

// RequestFriend asks to to be friends, with an optional note. friends is
// true when that made them friends at once (to had asked too) or they
// were friends already; false means the request waits for an answer.
func (c *Client) RequestFriend(ctx context.Context, to, note string) (friends bool, err error) {
	f, err := c.call(ctx, protocol.TypeFriendRequest, func(fb protocol.Frame) protocol.Frame {
		fb = fb.Str("to", to)
		if note != "" {
			fb = fb.Str("note", note)
		}
		return fb
	})
	if err != nil {
		return false, err
	}
	return f.Status == "friends", nil
}

// AcceptFriend accepts user's friend request.
func (c *Client) AcceptFriend(ctx context.Context, user string) error {
	return c.userCall(ctx, protocol.TypeFriendAccept, "user", user)
}

// DeclineFriend declines user's friend request.
func (c *Client) DeclineFriend(ctx context.Context, user string) error {
	return c.userCall(ctx, protocol.TypeFriendDecline, "user", user)
}

// CancelFriendRequest withdraws the request made to to.
func (c *Client) CancelFriendRequest(ctx context.Context, to string) error {
	return c.userCall(ctx, protocol.TypeFriendCancel, "to", to)
}

// RemoveFriend ends the friendship with user.
func (c *Client) RemoveFriend(ctx context.Context, user string) error {
	return c.userCall(ctx, protocol.TypeFriendRemove, "user", user)
}

// Block blocks user: their messages, friend requests and typing no longer
// reach this account, and a friendship with them ends.
func (c *Client) Block(ctx context.Context, user string) error {
	return c.userCall(ctx, protocol.TypeBlock, "user", user)
}

// Unblock lifts a block of user.
func (c *Client) Unblock(ctx context.Context, user string) error {
	return c.userCall(ctx, protocol.TypeUnblock, "user", user)
}

func (c *Client) userCall(ctx context.Context, t protocol.Type, key, user string) error {
	_, err := c.call(ctx, t, func(fb protocol.Frame) protocol.Frame { return fb.Str(key, user) })
	return err
}

// Friends returns the friends and pending friend requests. Its lists are
// never nil.
func (c *Client) Friends(ctx context.Context) (*FriendList, error) {
	f, err := c.call(ctx, protocol.TypeFriends, nil)
	if err != nil {
		return nil, err
	}
	return &FriendList{Friends: orEmpty(f.Friends), Incoming: orEmpty(f.Incoming), Outgoing: orEmpty(f.Outgoing)}, nil
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// Blocks returns the users this account blocks, sorted.
func (c *Client) Blocks(ctx context.Context) ([]string, error) {
	f, err := c.call(ctx, protocol.TypeBlocks, nil)
	if err != nil {
		return nil, err
	}
	return orEmpty(f.Users), nil
}

// SetPresence sets the presence state (online, away, busy or invisible)
// and status text ("" clears it) that friends see.
func (c *Client) SetPresence(ctx context.Context, state, text string) error {
	_, err := c.call(ctx, protocol.TypePresence, func(fb protocol.Frame) protocol.Frame {
		return fb.Str("state", state).Str("text", text)
	})
	return err
}

// Typing tells to that this user started (true) or stopped typing to
// them. The server ends a start by itself after a few seconds.
func (c *Client) Typing(ctx context.Context, to string, typing bool) error {
	return c.typing(ctx, "to", to, typing)
}

// GroupTyping tells the other members of group online that this user
// starts (typing true) or stops typing in it. Like Typing, a start the
// server hears no stop for ends by itself after a few seconds. Pushes of
// others' typing in a group come as Events of type typing with Group set.
func (c *Client) GroupTyping(ctx context.Context, group string, typing bool) error {
	return c.typing(ctx, "group", group, typing)
}

// typing sends a typing request to a user (field "to") or a group.
func (c *Client) typing(ctx context.Context, field, value string, typing bool) error {
	state := "stop"
	if typing {
		state = "start"
	}
	_, err := c.call(ctx, protocol.TypeTyping, func(fb protocol.Frame) protocol.Frame {
		return fb.Str(field, value).Str("state", state)
	})
	return err
}
