package client

import (
	"context"

	"github.com/qqchat/qq/daemon/protocol"
)

// Call sends one request of type t, with the fields build adds after
// type and id (build may be nil), and returns the ok reply, or the error
// reply as a *protocol.Error. It is for requests this package has no
// method for (an extension a server announces in its hello).
func (c *Client) Call(ctx context.Context, t protocol.Type, build func(protocol.Frame) protocol.Frame) (*protocol.ServerFrame, error) {
	return c.call(ctx, t, build)
}
