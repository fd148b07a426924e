package protocol_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/qqchat/qq/daemon/protocol"
)

// readAll returns every frame of in and the final error.
func readAll(r io.Reader, max int) ([]string, error) {
	fr := protocol.NewFrameReader(r, max)
	var frames []string
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return frames, err
		}
		frames = append(frames, string(f))
	}
}

func TestFrameReader(t *testing.T) {
	long := strings.Repeat("x", 10)
	for _, tc := range []struct {
		name    string
		in      string
		max     int
		want    []string
		wantErr error
	}{
		{"one", "a\n", 10, []string{"a"}, io.EOF},
		{"two in one write", "a\nb\n", 10, []string{"a", "b"}, io.EOF},
		{"crlf", "a\r\nb\r\n", 10, []string{"a", "b"}, io.EOF},
		{"only one cr removed", "a\r\r\n", 10, []string{"a\r"}, io.EOF},
		{"empty lines kept for caller", "\n\r\n", 10, []string{"", ""}, io.EOF},
		{"unterminated tail dropped", "a\nbc", 10, []string{"a"}, io.EOF},
		{"exactly max", long + "\n", 10, []string{long}, io.EOF},
		{"exactly max crlf", long + "\r\n", 10, []string{long}, io.EOF},
		{"max plus one", long + "x\n", 10, nil, protocol.ErrFrameTooLarge},
		{"max plus one without newline", long + "x", 10, nil, protocol.ErrFrameTooLarge},
		{"max then cr then junk", long + "\rx", 10, nil, protocol.ErrFrameTooLarge},
		{"frames before the long one", "ok\n" + long + long, 10, []string{"ok"}, protocol.ErrFrameTooLarge},
		{"big frames", strings.Repeat("y", 100000) + "\n", 200000, []string{strings.Repeat("y", 100000)}, io.EOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, mode := range []string{"whole", "onebyte"} {
				var r io.Reader = strings.NewReader(tc.in)
				if mode == "onebyte" {
					r = iotest.OneByteReader(r)
				}
				got, err := readAll(r, tc.max)
				if !errors.Is(err, tc.wantErr) || strings.Join(got, "|") != strings.Join(tc.want, "|") {
					t.Errorf("%s: frames %q, err %v; want %q, %v", mode, got, err, tc.want, tc.wantErr)
				}
			}
		})
	}
}

// countingReader records how many bytes were read in total.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestFrameReaderStopsEarly checks the contract's bound: the error comes
// once max+1 bytes arrived, without waiting for the line to end, and the
// reader never buffers much more than that.
func TestFrameReaderStopsEarly(t *testing.T) {
	const max = 65536
	// An endless line: the reader must give up, not read forever.
	cr := &countingReader{r: io.LimitReader(infinite{}, 1<<30)}
	fr := protocol.NewFrameReader(cr, max)
	if _, err := fr.ReadFrame(); !errors.Is(err, protocol.ErrFrameTooLarge) {
		t.Fatalf("ReadFrame = %v, want ErrFrameTooLarge", err)
	}
	if cr.n > 2*max {
		t.Errorf("read %d bytes of an endless line; want at most %d", cr.n, 2*max)
	}
}

type infinite struct{}

func (infinite) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'z'
	}
	return len(p), nil
}

func TestFrameReaderShrinksWhenIdle(t *testing.T) {
	// After a big frame the buffer goes back to small once drained.
	in := strings.Repeat("q", 50000) + "\n" + "small\n"
	r := iotest.HalfReader(strings.NewReader(in))
	fr := protocol.NewFrameReader(r, 65536)
	for range 2 {
		if _, err := fr.ReadFrame(); err != nil {
			t.Fatal(err)
		}
	}
	if fr.Buffered() != 0 {
		t.Errorf("Buffered = %d, want 0", fr.Buffered())
	}
}

func FuzzFrameReader(f *testing.F) {
	f.Add([]byte("{\"type\":\"ping\"}\n"), 16)
	f.Add([]byte("a\r\nb\n\r\n"), 3)
	f.Add([]byte("xxxxxxxx\r"), 7)
	f.Add([]byte("xxxxxxx\r\n"), 7)
	f.Add([]byte("\n\n\n"), 1)
	f.Fuzz(func(t *testing.T, in []byte, max int) {
		if max < 1 || max > 1<<16 {
			return
		}
		frames, err := readAll(iotest.HalfReader(bytes.NewReader(in)), max)
		// Reference: split on \n, strip one \r, stop at the first too-long
		// line (an unterminated tail that is already too long also counts).
		var want []string
		rest := in
		var wantErr error = io.EOF
		for {
			i := bytes.IndexByte(rest, '\n')
			if i < 0 {
				tail := rest
				if len(tail) > max+1 || (len(tail) == max+1 && tail[max] != '\r') {
					wantErr = protocol.ErrFrameTooLarge
				}
				break
			}
			line := bytes.TrimSuffix(rest[:i], []byte("\r"))
			if len(line) > max {
				wantErr = protocol.ErrFrameTooLarge
				break
			}
			want = append(want, string(line))
			rest = rest[i+1:]
		}
		if !errors.Is(err, wantErr) || strings.Join(frames, "\x00") != strings.Join(want, "\x00") || len(frames) != len(want) {
			t.Fatalf("frames %q err %v; want %q %v", frames, err, want, wantErr)
		}
	})
}
