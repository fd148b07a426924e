package plugins

import (
	"context"

	goplugin "github.com/hashicorp/go-plugin"
)

// Test hooks for package plugins_test (which can import sqlitestore).

// ErrNotConfigured is what calls before Configure fail with.
var ErrNotConfigured = errNotConfigured

// ErrConfig marks a factory's refusal of its configuration.
var ErrConfig = errConfig

// ServedPluginSet is the plugin set a plugin process serves, for
// goplugin.TestPluginGRPCConn: storage and/or filter behind their servers.
func ServedPluginSet(sf StorageFactory, ff FilterFactory) goplugin.PluginSet {
	set := goplugin.PluginSet{}
	if sf != nil {
		set[string(KindStorage)] = &storagePlugin{server: &storageServer{factory: sf}, version: ProtocolVersion}
	}
	if ff != nil {
		set[string(KindFilter)] = &filterPlugin{server: &filterServer{factory: ff}}
	}
	return set
}

// ServeStorageVersions is ServeStorage serving only the given protocol
// versions: a plugin built before version 2 serves just 1.
func ServeStorageVersions(f StorageFactory, versions ...int) { serveStorage(f, versions) }

// Configure calls Configure on a client dispensed from a
// goplugin.GRPCClient.
func Configure(ctx context.Context, client any, config []byte, env Env) error {
	return client.(configurer).configure(ctx, config, env)
}
