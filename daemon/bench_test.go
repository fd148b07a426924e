package daemon_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/daemon/protocol"
)

// BenchmarkSend measures end-to-end send throughput over real TCP into
// SQLite with fsync on commit: users connections, each keeping window
// sends in flight to the next user, every push read by its recipient.
// Reported: msgs/s (acknowledged sends per second).
func BenchmarkSend(b *testing.B) {
	for _, tc := range []struct{ users, window int }{{1, 1}, {16, 1}, {16, 16}, {64, 8}} {
		b.Run(fmt.Sprintf("users=%d/window=%d", tc.users, tc.window), func(b *testing.B) {
			benchSend(b, tc.users, tc.window)
		})
	}
}

func benchSend(b *testing.B, users, window int) {
	s := daemontest.Start(b)
	conns := make([]net.Conn, users)
	for i := range conns {
		c := s.User(b, fmt.Sprintf("u%d", i))
		c.C.SetDeadline(time.Time{})
		conns[i] = c.C
	}
	per := b.N/users + 1
	body := `"` + string(make([]byte, 0)) + "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789" + `"`
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			to := fmt.Sprintf("u%d", (i+1)%users)
			frame := []byte(`{"type":"send","to":"` + to + `","body":` + body + "}\n")
			credits := make(chan struct{}, window)
			done := make(chan struct{})
			go func() { // reader: count oks, skip pushes
				defer close(done)
				fr := protocol.NewFrameReader(c, 1<<20)
				oks := 0
				for oks < per {
					line, err := fr.ReadFrame()
					if err != nil {
						if err != io.EOF {
							b.Error(err)
						}
						return
					}
					if len(line) > 10 && string(line[9:11]) == "ok" {
						oks++
						<-credits
					} else if string(line[9:14]) == "error" {
						b.Errorf("send failed: %s", line)
						return
					}
				}
			}()
			w := bufio.NewWriter(c)
			for range per {
				select {
				case credits <- struct{}{}:
				case <-done:
					return
				}
				w.Write(frame)
				if len(credits) == window || w.Buffered() > 16<<10 {
					w.Flush()
				}
				if len(credits) < window {
					continue
				}
			}
			w.Flush()
			<-done
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(per*users)/time.Since(start).Seconds(), "msgs/s")
}
