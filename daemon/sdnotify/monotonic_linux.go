package sdnotify

import (
	"syscall"
	"unsafe"
)

// clockMonotonic is CLOCK_MONOTONIC of clock_gettime(2).
const clockMonotonic = 1

// monotonicUsec returns CLOCK_MONOTONIC in microseconds, the clock
// systemd's MONOTONIC_USEC refers to (Go's own monotonic readings are
// not exposed as absolute values).
func monotonicUsec() int64 {
	var ts syscall.Timespec
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockMonotonic, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		return 0
	}
	return ts.Nano() / 1000
}
