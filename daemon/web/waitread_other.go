//go:build !unix

package web

// peekReady is not used where canWaitReadable is false.
func peekReady(uintptr) bool { return true }

// canWaitReadable: elsewhere Read waits inside the library.
const canWaitReadable = false
