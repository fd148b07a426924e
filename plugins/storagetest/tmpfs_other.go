//go:build !linux

package storagetest

import "testing"

// MountTmpfs skips the test: mounting a small filesystem is done on Linux
// only.
func MountTmpfs(t testing.TB, size int64) string {
	t.Skip("a tmpfs can be mounted on Linux only")
	return ""
}
