package protocol

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// Request is one decoded client frame. Field values are decoded on demand by
// the typed accessors, which apply the contract's rules: a null value is
// absent, a value of the wrong JSON type is a bad_request. A member that
// appears twice counts once, with its last value (as encoding/json does).
type Request struct {
	Type Type
	// ID is the request's id as it appeared on the wire (a JSON string or
	// number), or nil when it was absent or null. Replies echo it verbatim.
	ID json.RawMessage

	fields []field
	inline [8]field // backs fields for frames of up to 8 members
	buf    []byte   // the Request's own copy of the frame; fields point into it
}

// field is one member of the frame's top-level object.
type field struct {
	name string // unescaped
	raw  []byte // the value as written
}

// DecodeRequest decodes one frame. On failure it returns a bad_request
// error and, when the id could be read, a Request carrying that id so the
// reply can echo it; otherwise the returned Request is nil. The Request
// does not keep line, which the caller may reuse.
//
// The frame is validated with encoding/json's scanner, then its top-level
// members are located by a scanner of our own without building a map: the
// accessors decode only the members a handler reads.
func DecodeRequest(line []byte) (*Request, *Error) {
	if !utf8.Valid(line) {
		return nil, Errorf(CodeBadRequest, "frame is not valid UTF-8")
	}
	if !json.Valid(line) {
		return nil, Errorf(CodeBadRequest, "frame is not one JSON object")
	}
	r := &Request{buf: append([]byte(nil), line...)}
	r.fields = r.inline[:0]
	if !r.scanObject() {
		return nil, Errorf(CodeBadRequest, "frame is not one JSON object")
	}
	if raw, ok := r.field("id"); ok {
		switch kind(raw) {
		case kindNull:
		case kindString, kindNumber:
			r.ID = raw
		default:
			return nil, Errorf(CodeBadRequest, "id must be a string, a number or null")
		}
	}
	raw, ok := r.field("type")
	if !ok || kind(raw) != kindString {
		return r, Errorf(CodeBadRequest, "type must be a string")
	}
	t, ok := decodeString(raw)
	if !ok {
		return r, Errorf(CodeBadRequest, "type must be a string")
	}
	r.Type = Type(t)
	return r, nil
}

// scanObject records the members of the object in r.buf, which is valid
// JSON (json.Valid). It reports false when the value is not an object.
func (r *Request) scanObject() bool {
	b := r.buf
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipSpace(b, i+1)
	if b[i] == '}' {
		return true
	}
	for {
		kEnd := stringEnd(b, i) // b[i] is the key's opening quote
		name, ok := decodeString(b[i:kEnd])
		if !ok {
			return false
		}
		i = skipSpace(b, kEnd)
		i = skipSpace(b, i+1) // past ':'
		vEnd := valueEnd(b, i)
		r.fields = append(r.fields, field{name: name, raw: b[i:vEnd:vEnd]})
		i = skipSpace(b, vEnd)
		if b[i] == '}' {
			return true
		}
		i = skipSpace(b, i+1) // past ','
	}
}

// field returns the raw value of the member name, the last one if it
// appears more than once.
func (r *Request) field(name string) ([]byte, bool) {
	for i := len(r.fields) - 1; i >= 0; i-- {
		if r.fields[i].name == name {
			return r.fields[i].raw, true
		}
	}
	return nil, false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the string starting at b[i] (a
// quote) in valid JSON.
func stringEnd(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// valueEnd returns the index just past the value starting at b[i] in
// valid JSON.
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = stringEnd(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	}
	for ; i < len(b); i++ { // a number, true, false or null
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
	}
	return len(b)
}

// decodeString decodes a JSON string literal from valid JSON. Without
// escapes the result shares raw's memory, which is never written again
// (it is a Request's own copy of the frame).
func decodeString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	body := raw[1 : len(raw)-1]
	if bytes.IndexByte(body, '\\') < 0 {
		return unsafe.String(unsafe.SliceData(body), len(body)), true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// String returns the string field name. ok is false when the field is absent
// or null; err is set when it has another JSON type.
func (r *Request) String(name string) (s string, ok bool, err *Error) {
	raw, present := r.field(name)
	if !present || kind(raw) == kindNull {
		return "", false, nil
	}
	if kind(raw) != kindString {
		return "", false, Errorf(CodeBadRequest, name+" must be a string")
	}
	s, ok = decodeString(raw)
	if !ok {
		return "", false, Errorf(CodeBadRequest, name+" must be a string")
	}
	return s, true, nil
}

// RequiredString is String for a field that must be present.
func (r *Request) RequiredString(name string) (string, *Error) {
	s, ok, err := r.String(name)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", Errorf(CodeBadRequest, name+" is required")
	}
	return s, nil
}

// Int returns the integer field name. ok is false when the field is absent
// or null; err is set when it is not a JSON number with an integral value
// that fits in an int64.
func (r *Request) Int(name string) (n int64, ok bool, err *Error) {
	raw, present := r.field(name)
	if !present || kind(raw) == kindNull {
		return 0, false, nil
	}
	bad := Errorf(CodeBadRequest, name+" must be an integer")
	if kind(raw) != kindNumber {
		return 0, false, bad
	}
	n, integral := parseInteger(string(raw))
	if !integral {
		return 0, false, bad
	}
	return n, true, nil
}

// Bool returns the boolean field name. ok is false when the field is
// absent, null, or not true or false.
func (r *Request) Bool(name string) (v, ok bool) {
	raw, present := r.field(name)
	switch {
	case !present:
		return false, false
	case string(raw) == "true":
		return true, true
	case string(raw) == "false":
		return false, true
	}
	return false, false
}

// Flag returns the optional boolean field name: false when absent or null,
// bad_request when it has another JSON type.
func (r *Request) Flag(name string) (bool, *Error) {
	raw, present := r.field(name)
	if !present || kind(raw) == kindNull {
		return false, nil
	}
	if v, ok := r.Bool(name); ok {
		return v, nil
	}
	return false, Errorf(CodeBadRequest, name+" must be true or false")
}

// Strings returns the field name as an array of strings. ok is false when
// the field is absent or null; err is set when it is not an array of
// strings.
func (r *Request) Strings(name string) (ss []string, ok bool, err *Error) {
	raw, present := r.field(name)
	if !present || kind(raw) == kindNull {
		return nil, false, nil
	}
	bad := Errorf(CodeBadRequest, name+" must be an array of strings")
	if kind(raw) != kindArray {
		return nil, false, bad
	}
	ss = []string{}
	i := skipSpace(raw, 1)
	if raw[i] == ']' {
		return ss, true, nil
	}
	for {
		end := valueEnd(raw, i)
		s, ok := decodeString(raw[i:end])
		if !ok {
			return nil, false, bad
		}
		ss = append(ss, s)
		i = skipSpace(raw, end)
		if raw[i] == ']' {
			return ss, true, nil
		}
		i = skipSpace(raw, i+1) // past ','
	}
}

type jsonKind int

const (
	kindInvalid jsonKind = iota
	kindNull
	kindBool
	kindNumber
	kindString
	kindArray
	kindObject
)

// kind classifies a syntactically valid JSON value by its first byte.
func kind(raw json.RawMessage) jsonKind {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return kindInvalid
	}
	switch c := raw[0]; {
	case c == 'n':
		return kindNull
	case c == 't' || c == 'f':
		return kindBool
	case c == '"':
		return kindString
	case c == '[':
		return kindArray
	case c == '{':
		return kindObject
	case c == '-' || (c >= '0' && c <= '9'):
		return kindNumber
	}
	return kindInvalid
}

// parseInteger reads a JSON number as written and reports whether its
// value is a whole number, exactly: no rounding, so 0.99999999999999999999
// is not 1 and 1.50e1 is 15. Whole values beyond int64, such as 1e400,
// saturate at the int64 bounds.
func parseInteger(num string) (n int64, integral bool) {
	neg := strings.HasPrefix(num, "-")
	num = strings.TrimPrefix(num, "-")
	mant, expText, _ := strings.Cut(strings.ToLower(num), "e")
	intPart, fracPart, _ := strings.Cut(mant, ".")
	digits := strings.TrimLeft(intPart+fracPart, "0")
	point := len(intPart) - (len(intPart+fracPart) - len(digits)) // digits before the point, after dropping leading zeros
	digits = strings.TrimRight(digits, "0")
	if digits == "" {
		return 0, true // zero, whatever the exponent
	}
	exp, err := strconv.ParseInt(strings.TrimPrefix(expText, "+"), 10, 32)
	if expText == "" {
		exp, err = 0, nil
	}
	if err != nil { // an exponent beyond ±2^31: a huge whole number or a tiny fraction
		if strings.HasPrefix(expText, "-") {
			return 0, false
		}
		return saturate(neg), true
	}
	point += int(exp)
	if point < len(digits) {
		return 0, false // non-zero digits after the point
	}
	if point > 19 {
		return saturate(neg), true
	}
	v, err := strconv.ParseUint(digits+strings.Repeat("0", point-len(digits)), 10, 64)
	switch {
	case err != nil || (!neg && v > math.MaxInt64) || (neg && v > 1<<63):
		return saturate(neg), true
	case neg:
		return -int64(v), true
	}
	return int64(v), true
}

func saturate(neg bool) int64 {
	if neg {
		return math.MinInt64
	}
	return math.MaxInt64
}
