package daemon_test

import (
	"fmt"
	"testing"

	"github.com/qqchat/qq/daemon/daemontest"
)

// BenchmarkSend measures end-to-end send throughput over real TCP into
// SQLite with fsync on commit, no filters: users connections, each keeping
// window sends in flight to the next user, every push read by its
// recipient. Reported: msgs/s (acknowledged sends per second).
func BenchmarkSend(b *testing.B) {
	for _, tc := range []struct{ users, window int }{{1, 1}, {16, 1}, {16, 16}, {64, 8}} {
		b.Run(fmt.Sprintf("users=%d/window=%d", tc.users, tc.window), func(b *testing.B) {
			s := daemontest.Start(b)
			s.Users(b, tc.users)
			b.ResetTimer()
			r := daemontest.SendLoad(b, s.Addr, tc.users, tc.window, b.N)
			b.ReportMetric(r.MsgsPerSec(), "msgs/s")
		})
	}
}
