package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckConfigClusterNeedsSharedStorage: qqd -t refuses cluster mode
// on a storage that keeps its data on this machine, naming the way out.
func TestCheckConfigClusterNeedsSharedStorage(t *testing.T) {
	for _, storage := range []string{"pebble", "sqlite"} {
		conf := filepath.Join(t.TempDir(), "qq.yaml")
		yaml := "storage: {plugin: " + storage + "}\ncluster:\n  enabled: true\n  node: a\n  nats: {urls: [nats://127.0.0.1:4222]}\n"
		if err := os.WriteFile(conf, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		_, stderr, err := runQQD(t, "-t", "-config", conf)
		if err == nil {
			t.Fatalf("%s: qqd -t accepted cluster mode", storage)
		}
		if want := "cluster mode needs a storage that all nodes share (storage.plugin: postgres)"; !strings.Contains(stderr, want) {
			t.Errorf("%s: stderr %q, want %q", storage, stderr, want)
		}
	}
}
