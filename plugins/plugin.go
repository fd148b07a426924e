package plugins

import (
	"context"
	"errors"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/qqchat/qq/plugins/pluginpb"
)

// ProtocolVersion is the newest version of the plugin protocol (the gRPC
// services of pluginpb/qqplugin.proto) this package speaks. Host and plugin
// negotiate the version through go-plugin's VersionedPlugins, which holds
// every version still supported (1 to 5): the handshake picks the newest
// one both sides know, and a plugin that shares none with the host fails
// to start with a version error.
//
// Version 2 adds Social to the storage service (compatibly: the same
// service with more methods). A host built with this package starts
// plugins of version 1 and 2; a plugin built with it serves both, so it
// also starts under a host that knows only version 1. A storage in a
// plugin process has Social only when version 2 was negotiated (see
// SocialOf). Groups and Tokens came later within version 2, as compatible
// additions to the same service: a storage in a plugin process has them
// when version 2 was negotiated and the plugin said so when configured
// (ConfigureResponse.groups, .tokens; see GroupsOf, TokensOf), which a
// plugin built before them never does. For filters, versions 1 and 2 are
// the same service.
//
// Version 3 adds call streams to both services (compatibly again): with a
// plugin that negotiated it, the host sends Filter, Write and LookupCIDs
// over one long-lived stream per plugin instead of as one unary gRPC call
// each (see calls.go); every other call stays unary. With a plugin of
// version 1 or 2 (built before), all calls are unary, as before; a plugin
// built with this package still serves them under an older host.
//
// Version 4 adds Backup to the storage service (compatibly): a storage in
// a plugin process has Backup only when version 4 was negotiated and the
// plugin said so when configured (ConfigureResponse.backup; see
// BackupOf). A plugin built before negotiates 3 (or less) and is run
// without backups; a plugin built with this package serves hosts of
// versions 1 to 3 as before. For filters, version 4 is the same service
// as 3.
//
// Version 5 adds Stats to the storage service (compatibly): a storage in a
// plugin process has Stats (the statistics qqd exports on /metrics, such
// as a connection pool's) only when version 5 was negotiated and the
// plugin said so when configured (ConfigureResponse.stats; see StatsOf).
// A plugin built before negotiates 4 (or less) and simply has no Stats;
// a plugin built with this package serves hosts of versions 1 to 4 as
// before. For filters, version 5 is the same service as 3.
const ProtocolVersion = 5

// backupProtocolVersion is the first protocol version with Backup.
const backupProtocolVersion = 4

// statsProtocolVersion is the first protocol version with Stats.
const statsProtocolVersion = 5

// minProtocolVersion is the oldest protocol version still served and
// accepted.
const minProtocolVersion = 1

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
// version: for every version from 1 to ProtocolVersion, "storage" and
// "filter". A plugin process serves the same names for the same versions
// (with its factory behind them; see ServeStorage and ServeFilter).
// Read-only by convention.
var VersionedPlugins = hostPlugins()

func hostPlugins() map[int]goplugin.PluginSet {
	sets := make(map[int]goplugin.PluginSet)
	for v := minProtocolVersion; v <= ProtocolVersion; v++ {
		sets[v] = goplugin.PluginSet{
			string(KindStorage): &storagePlugin{version: v},
			string(KindFilter):  &filterPlugin{version: v},
		}
	}
	return sets
}

// servedPlugins is the plugin side of VersionedPlugins: the one kind a
// process serves, backed by its server, for each of versions.
func servedPlugins(kind Kind, p goplugin.Plugin, versions []int) map[int]goplugin.PluginSet {
	sets := make(map[int]goplugin.PluginSet, len(versions))
	for _, v := range versions {
		sets[v] = goplugin.PluginSet{string(kind): p}
	}
	return sets
}

// servedVersions are the protocol versions a plugin process serves.
func servedVersions() []int {
	vs := make([]int, 0, ProtocolVersion-minProtocolVersion+1)
	for v := minProtocolVersion; v <= ProtocolVersion; v++ {
		vs = append(vs, v)
	}
	return vs
}

var (
	_ goplugin.GRPCPlugin = (*storagePlugin)(nil)
	_ goplugin.GRPCPlugin = (*filterPlugin)(nil)
)

// storagePlugin is the go-plugin glue for Storage. On the host, server is
// nil and only GRPCClient is used; version is the protocol version of the
// set it is in, which the clients it makes speak.
type storagePlugin struct {
	goplugin.NetRPCUnsupportedPlugin
	server  *storageServer
	version int
}

func (p *storagePlugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	if p.server == nil {
		return errors.New("plugins: storage plugin has no server")
	}
	pluginpb.RegisterStorageServer(s, p.server)
	return nil
}

func (p *storagePlugin) GRPCClient(ctx context.Context, _ *goplugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	rpc := pluginpb.NewStorageClient(c)
	sc := &storageClient{rpcBase: rpcBase{done: ctx}, rpc: rpc, version: p.version}
	if p.version >= callsProtocolVersion {
		sc.calls = newCallStream(func(ctx context.Context) (callsClient, error) { return rpc.Calls(ctx) })
	}
	return sc, nil
}

// filterPlugin is the go-plugin glue for Filter, like storagePlugin.
type filterPlugin struct {
	goplugin.NetRPCUnsupportedPlugin
	server  *filterServer
	version int
}

func (p *filterPlugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	if p.server == nil {
		return errors.New("plugins: filter plugin has no server")
	}
	pluginpb.RegisterFilterServer(s, p.server)
	return nil
}

func (p *filterPlugin) GRPCClient(ctx context.Context, _ *goplugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	rpc := pluginpb.NewFilterClient(c)
	fc := &filterClient{rpcBase: rpcBase{done: ctx}, rpc: rpc}
	if p.version >= callsProtocolVersion {
		fc.calls = newCallStream(func(ctx context.Context) (callsClient, error) { return rpc.Calls(ctx) })
	}
	return fc, nil
}
