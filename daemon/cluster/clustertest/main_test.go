package clustertest_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/qqchat/qq/daemon/cluster/clustertest"
)

// binDir holds the qqd that qqdBinary builds, once, for the whole run.
var binDir string

var buildQQD = sync.OnceValues(func() (string, error) {
	return clustertest.BuildQQD(context.Background(), binDir)
})

// qqdBinary returns a qqd built from this tree.
func qqdBinary(t *testing.T) string {
	t.Helper()
	bin, err := buildQQD()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "clustertest-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
