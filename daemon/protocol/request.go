package protocol

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Request is one decoded client frame. Field values are decoded on demand by
// the typed accessors, which apply the contract's rules: a null value is
// absent, a value of the wrong JSON type is a bad_request.
type Request struct {
	Type Type
	// ID is the request's id as it appeared on the wire (a JSON string or
	// number), or nil when it was absent or null. Replies echo it verbatim.
	ID     json.RawMessage
	fields map[string]json.RawMessage
}

// DecodeRequest decodes one frame. On failure it returns a bad_request
// error and, when the id could be read, a Request carrying that id so the
// reply can echo it; otherwise the returned Request is nil.
func DecodeRequest(line []byte) (*Request, *Error) {
	if !utf8.Valid(line) {
		return nil, Errorf(CodeBadRequest, "frame is not valid UTF-8")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(line, &fields); err != nil || fields == nil {
		return nil, Errorf(CodeBadRequest, "frame is not one JSON object")
	}
	r := &Request{fields: fields}
	if raw, ok := fields["id"]; ok {
		switch kind(raw) {
		case kindNull:
		case kindString, kindNumber:
			r.ID = raw
		default:
			return nil, Errorf(CodeBadRequest, "id must be a string, a number or null")
		}
	}
	raw, ok := fields["type"]
	if !ok || kind(raw) != kindString {
		return r, Errorf(CodeBadRequest, "type must be a string")
	}
	var t string
	if err := json.Unmarshal(raw, &t); err != nil {
		return r, Errorf(CodeBadRequest, "type must be a string")
	}
	r.Type = Type(t)
	return r, nil
}

// String returns the string field name. ok is false when the field is absent
// or null; err is set when it has another JSON type.
func (r *Request) String(name string) (s string, ok bool, err *Error) {
	raw, present := r.fields[name]
	if !present || kind(raw) == kindNull {
		return "", false, nil
	}
	if kind(raw) != kindString {
		return "", false, Errorf(CodeBadRequest, name+" must be a string")
	}
	if err := json.Unmarshal(raw, &s); err != nil {
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
	raw, present := r.fields[name]
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

// Strings returns the field name as an array of strings. ok is false when
// the field is absent or null; err is set when it is not an array of
// strings.
func (r *Request) Strings(name string) (ss []string, ok bool, err *Error) {
	raw, present := r.fields[name]
	if !present || kind(raw) == kindNull {
		return nil, false, nil
	}
	if kind(raw) != kindArray {
		return nil, false, Errorf(CodeBadRequest, name+" must be an array of strings")
	}
	bad := Errorf(CodeBadRequest, name+" must be an array of strings")
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, false, bad
	}
	ss = make([]string, len(elems))
	for i, e := range elems {
		if kind(e) != kindString || json.Unmarshal(e, &ss[i]) != nil {
			return nil, false, bad
		}
	}
	return ss, true, nil
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
