package daemontest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/qqchat/qq/daemon/protocol"
)

// LoadResult is what SendLoad measured.
type LoadResult struct {
	Sent    int           // sends acknowledged with ok
	Elapsed time.Duration // from the first send to the last ok
}

// MsgsPerSec is the acknowledged send rate.
func (r LoadResult) MsgsPerSec() float64 { return float64(r.Sent) / r.Elapsed.Seconds() }

// SendLoad logs users u0..u<users-1> in at addr (they must exist with
// password "password1", see Users) and has each send total/users messages
// of 100 bytes to the next user, keeping window sends in flight, while
// every push is read by its recipient. Any error reply fails tb.
func SendLoad(tb testing.TB, addr string, users, window, total int) LoadResult {
	tb.Helper()
	conns := make([]net.Conn, users)
	for i := range conns {
		c := DialRaw(tb, addr)
		c.Expect(`{"type":"hello"}`)
		c.Login(fmt.Sprintf("u%d", i), "password1")
		c.C.SetDeadline(time.Time{})
		conns[i] = c.C
	}
	per := max(1, total/users)
	start := time.Now()
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sendLoop(tb, c, fmt.Sprintf("u%d", (i+1)%users), fmt.Sprintf("u%d", i), per, window)
		}()
	}
	wg.Wait()
	return LoadResult{Sent: per * users, Elapsed: time.Since(start)}
}

// Users registers u0..u<n-1> with password "password1".
func (s *Server) Users(tb testing.TB, n int) {
	tb.Helper()
	c := s.Dial(tb)
	for i := range n {
		c.Register(fmt.Sprintf("u%d", i), "password1")
	}
	c.C.Close()
}

func sendLoop(tb testing.TB, c net.Conn, to, from string, n, window int) {
	credits := make(chan struct{}, window)
	done := make(chan struct{})
	go func() { // count oks, skip pushes
		defer close(done)
		fr := protocol.NewFrameReader(c, 1<<20)
		for oks := 0; oks < n; {
			line, err := fr.ReadFrame()
			if err != nil {
				if err != io.EOF {
					tb.Error(err)
				}
				return
			}
			switch {
			case len(line) > 11 && string(line[9:11]) == "ok":
				oks++
				<-credits
			case len(line) > 14 && string(line[9:14]) == "error":
				tb.Errorf("send failed: %s", line)
				return
			}
		}
	}()
	w := bufio.NewWriter(c)
	// Bodies differ per message so that repeat detection stays quiet.
	for seq := range n {
		select {
		case credits <- struct{}{}:
		case <-done:
			return
		}
		fmt.Fprintf(w, `{"type":"send","to":%q,"body":"%s %08d 0123456789012345678901234567890123456789012345678901234567890123456789012345678"}`+"\n", to, from, seq)
		if len(credits) == window || w.Buffered() > 16<<10 {
			w.Flush()
		}
	}
	w.Flush()
	<-done
}
