package plugins

import (
	"context"
	"errors"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/qqchat/qq/plugins/pluginpb"
)

// ProtocolVersion is the version of the plugin protocol (the gRPC services
// of pluginpb/qqplugin.proto) this package speaks. Host and plugin
// negotiate it through go-plugin's VersionedPlugins: a plugin built against
// another version fails to start with a version error. An incompatible
// change adds version 2 beside 1 in VersionedPlugins rather than replacing
// it.
const ProtocolVersion = 1

// Handshake is the go-plugin handshake shared by qqd and every plugin. The
// magic cookie only tells a plugin binary that it was started by a qq host
// (run by hand, it says so and exits); it is not a security measure.
// Read-only by convention.
var Handshake = goplugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "QQ_PLUGIN",
	MagicCookieValue: "7c1f0e9a4bd2563e8a0f9d41c6b27e53a8d4f0b1",
}

// Kind is what a plugin process serves; its value is also the name of the
// plugin in go-plugin's plugin set.
type Kind string

// Plugin kinds.
const (
	// KindStorage serves a Storage.
	KindStorage Kind = "storage"
	// KindFilter serves a Filter.
	KindFilter Kind = "filter"
)

func (k Kind) valid() bool { return k == KindStorage || k == KindFilter }

// VersionedPlugins is the host's go-plugin plugin sets by protocol
// version: for ProtocolVersion, "storage" and "filter". A plugin process
// serves the same names for the same versions (with its factory behind
// them; see ServeStorage and ServeFilter). Read-only by convention.
var VersionedPlugins = map[int]goplugin.PluginSet{
	ProtocolVersion: {
		string(KindStorage): &storagePlugin{},
		string(KindFilter):  &filterPlugin{},
	},
}

// servedPlugins is the plugin side of VersionedPlugins: the one kind a
// process serves, backed by its server.
func servedPlugins(kind Kind, p goplugin.Plugin) map[int]goplugin.PluginSet {
	return map[int]goplugin.PluginSet{ProtocolVersion: {string(kind): p}}
}

var (
	_ goplugin.GRPCPlugin = (*storagePlugin)(nil)
	_ goplugin.GRPCPlugin = (*filterPlugin)(nil)
)

// storagePlugin is the go-plugin glue for Storage. On the host, server is
// nil and only GRPCClient is used.
type storagePlugin struct {
	goplugin.NetRPCUnsupportedPlugin
	server *storageServer
}

func (p *storagePlugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	if p.server == nil {
		return errors.New("plugins: storage plugin has no server")
	}
	pluginpb.RegisterStorageServer(s, p.server)
	return nil
}

func (p *storagePlugin) GRPCClient(ctx context.Context, _ *goplugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &storageClient{rpcBase: rpcBase{done: ctx}, rpc: pluginpb.NewStorageClient(c)}, nil
}

// filterPlugin is the go-plugin glue for Filter, like storagePlugin.
type filterPlugin struct {
	goplugin.NetRPCUnsupportedPlugin
	server *filterServer
}

func (p *filterPlugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	if p.server == nil {
		return errors.New("plugins: filter plugin has no server")
	}
	pluginpb.RegisterFilterServer(s, p.server)
	return nil
}

func (p *filterPlugin) GRPCClient(ctx context.Context, _ *goplugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &filterClient{rpcBase: rpcBase{done: ctx}, rpc: pluginpb.NewFilterClient(c)}, nil
}
