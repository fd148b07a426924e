package storagedump_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/qqchat/qq/plugins/storagedump"
)

// TestEncoderLineLimit: the Encoder refuses a record whose line a Decoder
// would refuse (longer than MaxLine), and writes nothing of it.
func TestEncoderLineLimit(t *testing.T) {
	var out bytes.Buffer
	enc := storagedump.NewEncoder(&out)
	// Control characters take six bytes each in JSON (\u0001).
	body := strings.Repeat("\x01", storagedump.MaxLine/6+1)
	err := enc.Encode(&storagedump.Record{Message: &storagedump.Message{ID: "m", From: "a", To: "b", Body: body}})
	if err == nil || !strings.Contains(err.Error(), "longer than a dump line may be") {
		t.Fatalf("Encode of a %d-byte line = %v, want refused", 6*len(body), err)
	}
	if err := enc.Encode(&storagedump.Record{Header: &storagedump.Header{Format: storagedump.Format}}); err != nil {
		t.Fatal(err)
	}
	if err := enc.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "\n"); n != 1 || !strings.Contains(out.String(), storagedump.Format) {
		t.Fatalf("written %q, want only the header line", out.String()[:min(out.Len(), 200)])
	}
}
