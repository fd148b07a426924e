//go:build unix

package web

import "syscall"

// peekReady is the function waitReadable hands syscall.RawConn.Read: it
// reports whether the socket has a byte to read, or an error or end of
// stream for the read that follows to meet, without taking anything.
func peekReady(fd uintptr) bool {
	var b [1]byte
	for {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // nothing yet: wait for the socket
		}
		return true
	}
}

// canWaitReadable: waitReadable waits on unix systems.
const canWaitReadable = true
