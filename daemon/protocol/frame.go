package protocol

import (
	"bytes"
	"errors"
	"io"
)

// ErrFrameTooLarge is returned by FrameReader.ReadFrame when a frame grows
// past the reader's bound before its newline arrives.
var ErrFrameTooLarge = errors.New("frame too large")

// Buffer sizes of FrameReader. An idle reader holds at most smallBuf bytes;
// the buffer grows while data arrives in bulk and shrinks again when drained.
const (
	smallBuf = 512
	bulkBuf  = 16 << 10
)

// FrameReader splits a byte stream into frames: lines ended by "\n", with
// one "\r" before the "\n" removed. It never holds more than max+2 bytes of
// one line: once max+1 bytes of a frame (not counting a last "\r") have
// arrived without a newline it returns ErrFrameTooLarge and must not be used
// again.
//
// A FrameReader is not safe for concurrent use.
type FrameReader struct {
	r   io.Reader
	max int
	buf []byte
	// buf[start:end] holds bytes read but not yet returned.
	start, end int
	// scanned is how far past start a newline is known to be absent.
	scanned int
	// hot is set while reads fill all the space they are given.
	hot bool
	err error
}

// NewFrameReader returns a FrameReader reading from r with frames of at most
// max bytes.
func NewFrameReader(r io.Reader, max int) *FrameReader {
	if max < 1 {
		panic("protocol: NewFrameReader: max must be positive")
	}
	return &FrameReader{r: r, max: max}
}

// Buffered reports how many bytes have been read from the underlying reader
// but not yet returned as frames.
func (fr *FrameReader) Buffered() int { return fr.end - fr.start }

// ReadFrame returns the next frame without its line ending. The returned
// slice is valid only until the next call. At end of stream, a final
// unterminated line is discarded and io.EOF returned (a frame is only
// complete with its newline). Errors from the underlying reader are returned
// as they are, after every complete frame before them.
func (fr *FrameReader) ReadFrame() ([]byte, error) {
	for {
		if i := bytes.IndexByte(fr.buf[fr.start+fr.scanned:fr.end], '\n'); i >= 0 {
			nl := fr.start + fr.scanned + i
			line := fr.buf[fr.start:nl]
			fr.start = nl + 1
			fr.scanned = 0
			if n := len(line); n > 0 && line[n-1] == '\r' {
				line = line[:n-1]
			}
			if len(line) > fr.max {
				return nil, fr.fail(ErrFrameTooLarge)
			}
			return line, nil
		}
		fr.scanned = fr.end - fr.start
		if fr.tooLong() {
			return nil, fr.fail(ErrFrameTooLarge)
		}
		if fr.err != nil {
			return nil, fr.err
		}
		fr.fill()
	}
}

// tooLong reports whether the unterminated line in the buffer already
// exceeds the bound. max+1 bytes ending in "\r" may still be a frame of max
// bytes followed by "\r\n".
func (fr *FrameReader) tooLong() bool {
	n := fr.end - fr.start
	if n > fr.max+1 {
		return true
	}
	return n == fr.max+1 && fr.buf[fr.end-1] != '\r'
}

func (fr *FrameReader) fail(err error) error {
	fr.err = err
	fr.buf, fr.start, fr.end, fr.scanned = nil, 0, 0, 0
	return err
}

// fill reads once from the underlying reader into free space. The buffer is
// small while the stream trickles and bulkBuf while reads come back full; it
// only grows past bulkBuf for a single frame longer than that, up to max+2.
func (fr *FrameReader) fill() {
	pending := fr.end - fr.start
	want := smallBuf
	if fr.hot {
		want = bulkBuf
	}
	if pending == 0 && len(fr.buf) != want {
		fr.buf = nil // drained: resize for free, so an idle reader holds little
	}
	if fr.buf == nil {
		fr.buf = make([]byte, want)
		fr.start, fr.end = 0, 0
	}
	if fr.start > 0 {
		copy(fr.buf, fr.buf[fr.start:fr.end])
		fr.start, fr.end = 0, pending
	}
	if free := len(fr.buf) - fr.end; free < len(fr.buf)/4 {
		size := min(max(2*len(fr.buf), want), max(bulkBuf, fr.max+2))
		if size > len(fr.buf) {
			nb := make([]byte, size)
			copy(nb, fr.buf[:fr.end])
			fr.buf = nb
		}
	}
	free := len(fr.buf) - fr.end
	n, err := fr.r.Read(fr.buf[fr.end:])
	fr.end += n
	fr.hot = n == free
	if err != nil {
		fr.err = err
	}
}
