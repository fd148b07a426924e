package storagedump

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// MaxLine is the longest line a Decoder reads: 16 MiB. A record holds at
// most one message body, which the protocol bounds far below that (a frame
// is 64 KiB by default, and JSON escaping at most sextuples a body), so a
// longer line is damage, not data.
const MaxLine = 16 << 20

// Encoder writes records as JSON lines.
type Encoder struct {
	w    *bufio.Writer
	line bytes.Buffer // the record being encoded
	enc  *json.Encoder
}

// NewEncoder returns an Encoder writing to w, buffered: call Flush at the
// end.
func NewEncoder(w io.Writer) *Encoder {
	e := &Encoder{w: bufio.NewWriterSize(w, 256<<10)}
	e.enc = json.NewEncoder(&e.line)
	e.enc.SetEscapeHTML(false)
	return e
}

// Encode writes r as one line. A record whose line would be longer than
// MaxLine is refused, so that no dump is written that a Decoder would
// refuse to read back.
func (e *Encoder) Encode(r *Record) error {
	e.line.Reset()
	if err := e.enc.Encode(r); err != nil {
		return fmt.Errorf("storagedump: encode %s: %w", r.Kind(), err)
	}
	if e.line.Len() > MaxLine {
		return fmt.Errorf("storagedump: encode %s: its line is %d bytes, longer than a dump line may be (%d)", r.Kind(), e.line.Len(), MaxLine)
	}
	if _, err := e.w.Write(e.line.Bytes()); err != nil {
		return fmt.Errorf("storagedump: write: %w", err)
	}
	return nil
}

// Flush writes out what is buffered.
func (e *Encoder) Flush() error {
	if err := e.w.Flush(); err != nil {
		return fmt.Errorf("storagedump: write: %w", err)
	}
	return nil
}

// Decoder reads a dump written by an Encoder, one record per line. It
// checks each line on its own: valid JSON, no unknown field, exactly one
// record kind, at most MaxLine bytes, and a first record that is a Header
// of this Format. The order of the records and the Trailer's counts are
// Load's to check.
type Decoder struct {
	sc   *bufio.Scanner
	line int64
}

// NewDecoder returns a Decoder reading from r.
func NewDecoder(r io.Reader) *Decoder {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxLine+1) // +1: the newline
	return &Decoder{sc: sc}
}

// Line is the number of the last line Next read (1 for the first).
func (d *Decoder) Line() int64 { return d.line }

// Next returns the next record, or io.EOF at the end of the input. Every
// other error names the line.
func (d *Decoder) Next() (*Record, error) {
	if !d.sc.Scan() {
		err := d.sc.Err()
		switch {
		case err == nil && d.line == 0:
			return nil, errors.New("storagedump: empty input: no header")
		case err == nil:
			return nil, io.EOF
		case errors.Is(err, bufio.ErrTooLong):
			return nil, fmt.Errorf("storagedump: line %d: longer than %d bytes", d.line+1, MaxLine)
		}
		return nil, fmt.Errorf("storagedump: line %d: read: %w", d.line+1, err)
	}
	d.line++
	r, err := decodeLine(d.sc.Bytes())
	if err != nil {
		return nil, fmt.Errorf("storagedump: line %d: %w", d.line, err)
	}
	if d.line == 1 {
		if r.Header == nil {
			return nil, fmt.Errorf("storagedump: line 1: a %s, want the header: not a dump", r.Kind())
		}
		if r.Header.Format != Format {
			return nil, fmt.Errorf("storagedump: line 1: format %q, want %q", r.Header.Format, Format)
		}
	}
	return r, nil
}

// decodeLine parses one line into a record with exactly one kind set.
func decodeLine(line []byte) (*Record, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var r Record
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("bad record: %w", err)
	}
	if dec.More() {
		return nil, errors.New("bad record: more than one JSON value")
	}
	if n := r.kinds(); n != 1 {
		return nil, fmt.Errorf("bad record: %d kinds set, want exactly one", n)
	}
	return &r, nil
}

// kinds counts the fields of r that are set.
func (r *Record) kinds() int {
	n := 0
	for _, set := range [...]bool{r.Header != nil, r.User != nil, r.Message != nil, r.Friend != nil,
		r.FriendRequest != nil, r.Block != nil, r.Group != nil, r.GroupMember != nil, r.GroupEntry != nil,
		r.JoinRequest != nil, r.GroupCursor != nil, r.Token != nil, r.Trailer != nil} {
		if set {
			n++
		}
	}
	return n
}

// Kind names the record's kind as its JSON key does ("user", "msg", ...),
// "empty" when none is set; with several set, the first.
func (r *Record) Kind() string {
	switch {
	case r == nil:
		return "empty"
	case r.Header != nil:
		return "header"
	case r.User != nil:
		return "user"
	case r.Message != nil:
		return "msg"
	case r.Friend != nil:
		return "friend"
	case r.FriendRequest != nil:
		return "friend_request"
	case r.Block != nil:
		return "block"
	case r.Group != nil:
		return "group"
	case r.GroupMember != nil:
		return "group_member"
	case r.GroupEntry != nil:
		return "group_entry"
	case r.JoinRequest != nil:
		return "join_request"
	case r.GroupCursor != nil:
		return "group_cursor"
	case r.Token != nil:
		return "token"
	case r.Trailer != nil:
		return "trailer"
	}
	return "empty"
}
