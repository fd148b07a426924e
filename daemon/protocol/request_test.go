package protocol_test

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/qqchat/qq/daemon/protocol"
)

func TestDecodeRequest(t *testing.T) {
	for _, tc := range []struct {
		in       string
		wantType protocol.Type
		wantID   string // raw, "" for none
		wantErr  bool
		errHasID bool
	}{
		{`{"type":"ping"}`, "ping", "", false, false},
		{`  {"type":"ping","id":"a"}  `, "ping", `"a"`, false, false},
		{`{"type":"ping","id":7}`, "ping", `7`, false, false},
		{`{"type":"ping","id":-1.5e3}`, "ping", `-1.5e3`, false, false},
		{`{"type":"ping","id":null}`, "ping", "", false, false},
		{`{"type":"x","unknown":[1,2]}`, "x", "", false, false},
		{`{"type":"ping","id":true}`, "", "", true, false},
		{`{"type":"ping","id":{}}`, "", "", true, false},
		{`{"id":"k"}`, "", `"k"`, true, true},
		{`{"type":5,"id":"k"}`, "", `"k"`, true, true},
		{`{"type":null,"id":"k"}`, "", `"k"`, true, true},
		{`[{"type":"ping"}]`, "", "", true, false},
		{`"ping"`, "", "", true, false},
		{`null`, "", "", true, false},
		{`{"type":"ping"} {"type":"ping"}`, "", "", true, false},
		{`{"type":"ping"`, "", "", true, false},
		{"{\"type\":\"p\xffing\"}", "", "", true, false},
		{`{"TYPE":"ping"}`, "", "", true, false},
	} {
		r, err := protocol.DecodeRequest([]byte(tc.in))
		if (err != nil) != tc.wantErr {
			t.Errorf("DecodeRequest(%q) error = %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if err != nil {
			if err.Code != protocol.CodeBadRequest {
				t.Errorf("DecodeRequest(%q) code = %s, want bad_request", tc.in, err.Code)
			}
			if (r != nil && r.ID != nil) != tc.errHasID {
				t.Errorf("DecodeRequest(%q) echoes id = %v, want %v", tc.in, r != nil && r.ID != nil, tc.errHasID)
			}
			if tc.errHasID && string(r.ID) != tc.wantID {
				t.Errorf("DecodeRequest(%q) id = %s, want %s", tc.in, r.ID, tc.wantID)
			}
			continue
		}
		if r.Type != tc.wantType || string(r.ID) != tc.wantID {
			t.Errorf("DecodeRequest(%q) = %q id %s, want %q id %s", tc.in, r.Type, r.ID, tc.wantType, tc.wantID)
		}
	}
}

func TestRequestFields(t *testing.T) {
	r, err := protocol.DecodeRequest([]byte(`{"type":"t","s":"x\n\u00e9","n":3,"f":2.5,"big":1e400,"neg":-4,"null":null,"arr":["a","b"],"bad":[1],"nulls":[null],"num":"5"}`))
	if err != nil {
		t.Fatal(err)
	}
	if s, ok, err := r.String("s"); s != "x\né" || !ok || err != nil {
		t.Errorf(`String("s") = %q, %v, %v`, s, ok, err)
	}
	if _, ok, err := r.String("null"); ok || err != nil {
		t.Errorf(`String("null") = %v, %v; want absent`, ok, err)
	}
	if _, ok, err := r.String("absent"); ok || err != nil {
		t.Errorf(`String("absent") = %v, %v; want absent`, ok, err)
	}
	if _, _, err := r.String("n"); err == nil {
		t.Error(`String("n") accepted a number`)
	}
	if _, err := r.RequiredString("null"); err == nil {
		t.Error(`RequiredString("null") accepted null`)
	}
	for _, tc := range []struct {
		field string
		want  int64
		ok    bool
		bad   bool
	}{
		{"n", 3, true, false},
		{"neg", -4, true, false},
		{"big", math.MaxInt64, true, false},
		{"f", 0, false, true},
		{"num", 0, false, true},
		{"null", 0, false, false},
	} {
		n, ok, err := r.Int(tc.field)
		if n != tc.want || ok != tc.ok || (err != nil) != tc.bad {
			t.Errorf("Int(%q) = %d, %v, %v; want %d, %v, bad %v", tc.field, n, ok, err, tc.want, tc.ok, tc.bad)
		}
	}
	if ss, ok, err := r.Strings("arr"); len(ss) != 2 || !ok || err != nil {
		t.Errorf(`Strings("arr") = %q, %v, %v`, ss, ok, err)
	}
	for _, f := range []string{"bad", "nulls", "s"} {
		if _, _, err := r.Strings(f); err == nil {
			t.Errorf("Strings(%q) accepted it", f)
		}
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	m := protocol.Message{ID: "m1", From: "a", To: "b", Body: "line1\nline2 \"q\" \\ \t \x00 \x1f é 中文 😀 \u2028", TS: 1764163200000}
	line := protocol.AppendPush(nil, &m)
	if line[len(line)-1] != '\n' || json.Valid(line[:len(line)-1]) == false {
		t.Fatalf("AppendPush = %q: not one JSON line", line)
	}
	var f protocol.ServerFrame
	if err := json.Unmarshal(line, &f); err != nil {
		t.Fatal(err)
	}
	if f.Type != protocol.TypeMsg || f.Msg() != m {
		t.Errorf("round trip = %+v, want %+v", f.Msg(), m)
	}
	// With the recipient's seq (the postgres storage numbers messages).
	m.Seq = 42
	f = protocol.ServerFrame{}
	if err := json.Unmarshal(protocol.AppendPush(nil, &m), &f); err != nil {
		t.Fatal(err)
	}
	if f.Msg() != m {
		t.Errorf("round trip with seq = %+v, want %+v", f.Msg(), m)
	}
	// Invalid UTF-8 never produces invalid JSON.
	s := protocol.AppendString(nil, "a\xffb")
	var back string
	if err := json.Unmarshal(s, &back); err != nil || back != "a\ufffdb" {
		t.Errorf("AppendString(invalid) = %s -> %q, %v", s, back, err)
	}
}

func TestValidUser(t *testing.T) {
	for name, want := range map[string]bool{
		"alice": true, "a": true, "0day": true, "a_b.c-d": true, "abcdefghijklmnopqrstuvwxyz012345": true,
		"": false, "_a": false, ".a": false, "-a": false, "Alice": false, "a b": false, "é": false,
		"abcdefghijklmnopqrstuvwxyz0123456": false, "a\x00": false,
	} {
		if got := protocol.ValidUser(name); got != want {
			t.Errorf("ValidUser(%q) = %v, want %v", name, got, want)
		}
	}
}

func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"type":"ping","id":1}`,
		`{"type":"send","id":"x","to":"bob","body":"hi","cid":"c1"}`,
		`{"type":"ack","msg_ids":["a","b"]}`,
		`{"type":"history","with":"bob","before":null,"limit":1e400}`,
		`{"type":"login","user":"a","password":"p","user":"b"}`,
		`[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]`,
		"{\"type\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := protocol.DecodeRequest(in)
		if err != nil {
			if err.Code != protocol.CodeBadRequest {
				t.Fatalf("code %s", err.Code)
			}
			if r == nil {
				return
			}
		}
		if r.ID != nil && !json.Valid(r.ID) {
			t.Fatalf("id %q not valid JSON", r.ID)
		}
		// Echoing the id in a reply must give valid JSON.
		out := protocol.AppendError(nil, r.ID, protocol.Errorf(protocol.CodeBadRequest, "x"))
		if !json.Valid(out) {
			t.Fatalf("reply %q not valid JSON", out)
		}
		for _, name := range []string{"to", "body", "user", "cid"} {
			r.String(name)
		}
		r.Int("limit")
		r.Strings("msg_ids")
	})
}

func TestParseIntegerExact(t *testing.T) {
	for _, tc := range []struct {
		in       string
		want     int64
		integral bool
	}{
		{"0", 0, true}, {"-0", 0, true}, {"7", 7, true}, {"-7", -7, true},
		{"1.0", 1, true}, {"1.50e1", 15, true}, {"150e-1", 15, true}, {"1e2", 100, true}, {"1E+2", 100, true},
		{"0.5", 0, false}, {"0.99999999999999999999", 0, false}, {"2.0000000000000001", 0, false}, {"15e-1", 0, false},
		{"0e-999999999999", 0, true}, {"1e-999999999999", 0, false},
		{"1e400", math.MaxInt64, true}, {"-1e400", math.MinInt64, true}, {"1e99999999999", math.MaxInt64, true},
		{"9223372036854775807", math.MaxInt64, true}, {"9223372036854775808", math.MaxInt64, true},
		{"-9223372036854775808", math.MinInt64, true}, {"100000000000000000000", math.MaxInt64, true},
		{"0.000", 0, true}, {"000123", 123, true},
	} {
		r, err := protocol.DecodeRequest([]byte(`{"type":"t","limit":` + tc.in + `}`))
		if err != nil {
			if tc.in == "000123" {
				continue // not valid JSON: leading zeros
			}
			t.Fatalf("%s: %v", tc.in, err)
		}
		n, ok, perr := r.Int("limit")
		if (perr == nil) != tc.integral || (tc.integral && (n != tc.want || !ok)) {
			t.Errorf("Int(%s) = %d, %v, %v; want %d, integral %v", tc.in, n, ok, perr, tc.want, tc.integral)
		}
	}
}
