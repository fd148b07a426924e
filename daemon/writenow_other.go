//go:build !unix

package daemon

// canWriteNow: elsewhere every write goes through a writer goroutine.
const canWriteNow = false

func (s *session) writeNow(buf []byte) (int, error) { panic("writeNow without a raw connection") }
