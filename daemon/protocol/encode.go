package protocol

import (
	"strconv"
	"unicode/utf8"
)

// Frame builds one server frame by appending JSON to a byte slice, without
// reflection. Start one with StartFrame, add fields, and finish with End,
// which appends the closing brace and the newline.
type Frame struct{ b []byte }

// StartFrame appends `{"type":"<t>"` to dst.
func StartFrame(dst []byte, t Type) Frame {
	dst = append(dst, `{"type":`...)
	dst = AppendString(dst, string(t))
	return Frame{dst}
}

func (f Frame) key(k string) []byte {
	b := f.b
	if len(b) == 0 || b[len(b)-1] != '{' { // the first member of an object has no comma
		b = append(b, ',')
	}
	b = AppendString(b, k)
	return append(b, ':')
}

// ID appends the "id" field: raw as it was received, or null when raw is
// empty.
func (f Frame) ID(raw []byte) Frame {
	b := f.key("id")
	if len(raw) == 0 {
		return Frame{append(b, "null"...)}
	}
	return Frame{append(b, raw...)}
}

// Str appends a string field.
func (f Frame) Str(k, v string) Frame { return Frame{AppendString(f.key(k), v)} }

// Int appends an integer field.
func (f Frame) Int(k string, v int64) Frame { return Frame{strconv.AppendInt(f.key(k), v, 10)} }

// Bool appends a boolean field.
func (f Frame) Bool(k string, v bool) Frame { return Frame{strconv.AppendBool(f.key(k), v)} }

// Strings appends an array of strings.
func (f Frame) Strings(k string, vs []string) Frame {
	b := append(f.key(k), '[')
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendString(b, v)
	}
	return Frame{append(b, ']')}
}

// Messages appends an array of msg objects.
func (f Frame) Messages(k string, ms []Message) Frame {
	b := append(f.key(k), '[')
	for i := range ms {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendMessage(b, &ms[i])
	}
	return Frame{append(b, ']')}
}

// End closes the frame and appends the newline.
func (f Frame) End() []byte { return append(f.b, '}', '\n') }

// AppendMessage appends m as a msg object without a newline: the form it
// has in pushes and arrays alike.
func AppendMessage(dst []byte, m *Message) []byte {
	f := StartFrame(dst, TypeMsg).Str("msg_id", m.ID).Str("from", m.From).Str("to", m.To).Str("body", m.Body).Int("ts", m.TS)
	if m.Seq != 0 {
		f = f.Int("seq", m.Seq)
	}
	return append(f.b, '}')
}

// AppendPush appends m as a complete msg push frame.
func AppendPush(dst []byte, m *Message) []byte { return append(AppendMessage(dst, m), '\n') }

// AppendError appends an error reply frame.
func AppendError(dst []byte, id []byte, e *Error) []byte {
	f := StartFrame(dst, TypeError).ID(id).Str("code", string(e.Code)).Str("message", e.Message)
	if e.Code == CodeRateLimited {
		f = f.Int("retry_after_ms", e.RetryAfterMS)
	}
	return f.End()
}

// AppendHello appends the hello frame.
func AppendHello(dst []byte, server, version string, features ...string) []byte {
	f := StartFrame(dst, TypeHello).Str("server", server).Str("version", version).Int("proto", Version)
	if len(features) > 0 {
		f = f.Strings("features", features)
	}
	return f.End()
}

// StartObject starts a JSON object that is not a frame (an element of an
// array in a reply); close it with Close.
func StartObject(dst []byte) Frame { return Frame{append(dst, '{')} }

// Close ends an object started with StartObject.
func (f Frame) Close() []byte { return append(f.b, '}') }

// Raw appends a member whose value is raw, already-encoded JSON.
func (f Frame) Raw(k string, raw []byte) Frame { return Frame{append(f.key(k), raw...)} }

// AppendKicked appends a kicked push; retryAfterMS > 0 adds
// retry_after_ms, when to reconnect (qqd sets it with reason shutdown).
func AppendKicked(dst []byte, reason KickReason, message string, retryAfterMS int64) []byte {
	f := StartFrame(dst, TypeKicked).Str("reason", string(reason)).Str("message", message)
	if retryAfterMS > 0 {
		f = f.Int("retry_after_ms", retryAfterMS)
	}
	return f.End()
}

const hex = "0123456789abcdef"

// AppendString appends s as a JSON string. Control characters, quote and
// backslash are escaped; invalid UTF-8 is replaced by U+FFFD, as
// encoding/json does, so the output is always valid JSON.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
