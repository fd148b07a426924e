//go:build unix

package daemon

import (
	"errors"
	"os"
	"syscall"
)

// canWriteNow: sessions on plain TCP connections write with writeNow.
const canWriteNow = true

// writeNow writes buf to the socket without waiting for it to take more:
// it returns how much the socket took, which is less than len(buf) only
// when the socket buffer is full. s.raw must be set.
func (s *session) writeNow(buf []byte) (n int, err error) {
	if s.rawWrite == nil {
		s.rawWrite = func(fd uintptr) bool {
			s.rawN, s.rawErr = syscall.Write(int(fd), s.rawBuf)
			return true // never wait for the socket
		}
	}
	defer func() { s.rawBuf = nil }()
	for n < len(buf) {
		s.rawBuf = buf[n:]
		if err := s.raw.Write(s.rawWrite); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return n, nil // a writer's deadline: leave the rest to a writer
			}
			return n, err
		}
		switch m, werr := s.rawN, s.rawErr; {
		case errors.Is(werr, syscall.EINTR):
			continue
		case errors.Is(werr, syscall.EAGAIN):
			return n, nil
		case werr != nil:
			return n, werr
		case m <= 0:
			return n, nil
		default:
			n += m
		}
	}
	return n, nil
}
