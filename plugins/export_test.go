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
		set[string(KindFilter)] = &filterPlugin{server: &filterServer{factory: ff}, version: ProtocolVersion}
	}
	return set
}

// ServeStorageVersions is ServeStorage serving only the given protocol
// versions: a plugin built before version 2 serves just 1.
func ServeStorageVersions(f StorageFactory, versions ...int) { serveStorage(f, versions) }

// ServeFilterVersions is ServeFilter serving only the given protocol
// versions.
func ServeFilterVersions(f FilterFactory, versions ...int) { serveFilter(f, versions) }

// UsesCallStream reports whether the Storage or Filter of a plugin
// process (Process.Storage, Process.Filter) sends its hot calls on a call
// stream rather than as unary calls.
func UsesCallStream(v any) bool {
	switch c := v.(type) {
	case *storageClient:
		return c.calls != nil
	case *filterClient:
		return c.calls != nil
	}
	return false
}

// Configure calls Configure on a client dispensed from a
// goplugin.GRPCClient.
func Configure(ctx context.Context, client any, config []byte, env Env) error {
	return client.(configurer).configure(ctx, config, env)
}
