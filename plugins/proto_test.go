package plugins_test

import (
	"bufio"
	"fmt"
	"os"
	"testing"

	"github.com/qqchat/qq/plugins"
)

// The .proto names the protocol version it defines on its first line.
func TestProtoVersion(t *testing.T) {
	f, err := os.Open("pluginpb/qqplugin.proto")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		t.Fatalf("read qqplugin.proto: %v", sc.Err())
	}
	want := fmt.Sprintf("// qq plugin protocol version %d", plugins.ProtocolVersion)
	if got := sc.Text(); got != want {
		t.Errorf("qqplugin.proto first line %q, want %q", got, want)
	}
	if plugins.Handshake.ProtocolVersion != plugins.ProtocolVersion {
		t.Errorf("Handshake.ProtocolVersion = %d, want %d", plugins.Handshake.ProtocolVersion, plugins.ProtocolVersion)
	}
	// Every version from 1 on is still served, with both kinds.
	for v := 1; v <= plugins.ProtocolVersion; v++ {
		set, ok := plugins.VersionedPlugins[v]
		if !ok {
			t.Errorf("VersionedPlugins has no set for version %d", v)
			continue
		}
		for _, k := range []plugins.Kind{plugins.KindStorage, plugins.KindFilter} {
			if set[string(k)] == nil {
				t.Errorf("VersionedPlugins[%d] has no %s", v, k)
			}
		}
	}
	if len(plugins.VersionedPlugins) != plugins.ProtocolVersion {
		t.Errorf("VersionedPlugins has %d versions, want 1 to %d", len(plugins.VersionedPlugins), plugins.ProtocolVersion)
	}
}
