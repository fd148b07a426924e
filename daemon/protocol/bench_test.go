package protocol_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/qqchat/qq/daemon/protocol"
)

var sendLine = []byte(`{"type":"send","id":"c-17","to":"bob","body":"` + strings.Repeat("x", 100) + `","cid":"alice-17"}`)

// BenchmarkFrameReader splits a stream of pipelined send frames.
func BenchmarkFrameReader(b *testing.B) {
	const frames = 1000
	stream := bytes.Repeat(append(append([]byte{}, sendLine...), '\n'), frames)
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		fr := protocol.NewFrameReader(bytes.NewReader(stream), protocol.DefaultMaxFrameBytes)
		for range frames {
			if _, err := fr.ReadFrame(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkDecodeSend decodes a send request and reads its fields, as the
// send handler does.
func BenchmarkDecodeSend(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		r, err := protocol.DecodeRequest(sendLine)
		if err != nil {
			b.Fatal(err)
		}
		r.RequiredString("to")
		r.RequiredString("body")
		r.String("cid")
	}
}

// BenchmarkEncodePush encodes a msg push into a reused buffer.
func BenchmarkEncodePush(b *testing.B) {
	m := protocol.Message{ID: "01m8c670vr839tn6mrwvr3cycm", From: "alice", To: "bob", Body: strings.Repeat("x", 100), TS: 1795705504632}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = protocol.AppendPush(buf[:0], &m)
	}
}

// BenchmarkEncodeSendOK encodes the ok to a send, as the pipeline does.
func BenchmarkEncodeSendOK(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		protocol.StartFrame(nil, protocol.TypeOK).ID([]byte(`"c-17"`)).Str("msg_id", "01m8c670vr839tn6mrwvr3cycm").Int("ts", 1795705504632).Str("status", "sent").End()
	}
}
