package protocol

import (
	"encoding/json"
	"slices"
	"testing"
	"unicode/utf8"
)

// The decoder before the hand-written scanner (encoding/json into a map),
// kept as the reference that FuzzDecodeRequestDifferential compares with.

// refRequest is one decoded client frame. Field values are decoded on demand by
// the typed accessors, which apply the contract's rules: a null value is
// absent, a value of the wrong JSON type is a bad_request.
type refRequest struct {
	Type Type
	// ID is the request's id as it appeared on the wire (a JSON string or
	// number), or nil when it was absent or null. Replies echo it verbatim.
	ID     json.RawMessage
	fields map[string]json.RawMessage
}

// refDecodeRequest decodes one frame. On failure it returns a bad_request
// error and, when the id could be read, a refRequest carrying that id so the
// reply can echo it; otherwise the returned refRequest is nil.
func refDecodeRequest(line []byte) (*refRequest, *Error) {
	if !utf8.Valid(line) {
		return nil, Errorf(CodeBadRequest, "frame is not valid UTF-8")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(line, &fields); err != nil || fields == nil {
		return nil, Errorf(CodeBadRequest, "frame is not one JSON object")
	}
	r := &refRequest{fields: fields}
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
func (r *refRequest) String(name string) (s string, ok bool, err *Error) {
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
func (r *refRequest) RequiredString(name string) (string, *Error) {
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
func (r *refRequest) Int(name string) (n int64, ok bool, err *Error) {
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
func (r *refRequest) Strings(name string) (ss []string, ok bool, err *Error) {
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

// FuzzDecodeRequestDifferential checks that DecodeRequest and its typed
// accessors agree with the encoding/json reference on every input.
func FuzzDecodeRequestDifferential(f *testing.F) {
	for _, s := range []string{
		`{"type":"ping","id":1}`,
		`{"type":"send","id":"x","to":"bob","body":"hi \u00e9\n","cid":"c1"}`,
		`{"type":"ack","msg_ids":["a","b", "c\"d"]}`,
		`{"type":"ack","msg_ids":[]}`,
		`{"type":"ack","msg_ids":["a",1]}`,
		`{"type":"history","with":"bob","before":null,"limit":1e400}`,
		`{"type":"login","user":"a","password":"p","user":"b"}`,
		` { "t\u0079pe" : "send" , "x":{"a":[1,{"b":"}"}]}, "id" : -1.5e3 } `,
		`{"type":"send","to":["a"],"body":{"x":1},"cid":true}`,
		`{"type":"send","id":null,"id":"z"}`,
		`[{"type":"ping"}]`,
		`null`,
		`{}`,
		"{\"type\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		got, gerr := DecodeRequest(in)
		want, werr := refDecodeRequest(in)
		if (gerr == nil) != (werr == nil) || (got == nil) != (want == nil) {
			t.Fatalf("%q: got (%v, %v), want (%v, %v)", in, got != nil, gerr, want != nil, werr)
		}
		if got == nil {
			return
		}
		if got.Type != want.Type || string(got.ID) != string(want.ID) {
			t.Fatalf("%q: type/id %q %q, want %q %q", in, got.Type, got.ID, want.Type, want.ID)
		}
		for _, name := range []string{"to", "body", "cid", "user", "type", "id", "x", "msg_ids", "limit"} {
			gs, gok, ge := got.String(name)
			ws, wok, we := want.String(name)
			if gs != ws || gok != wok || (ge == nil) != (we == nil) {
				t.Fatalf("%q: String(%s) = %q %v %v, want %q %v %v", in, name, gs, gok, ge, ws, wok, we)
			}
			gn, gok, ge := got.Int(name)
			wn, wok, we := want.Int(name)
			if gn != wn || gok != wok || (ge == nil) != (we == nil) {
				t.Fatalf("%q: Int(%s) = %d %v %v, want %d %v %v", in, name, gn, gok, ge, wn, wok, we)
			}
			gss, gok, ge := got.Strings(name)
			wss, wok, we := want.Strings(name)
			if !slices.Equal(gss, wss) || (gss == nil) != (wss == nil) || gok != wok || (ge == nil) != (we == nil) {
				t.Fatalf("%q: Strings(%s) = %q %v %v, want %q %v %v", in, name, gss, gok, ge, wss, wok, we)
			}
		}
	})
}
