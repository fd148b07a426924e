package antispam

import (
	"context"
	"fmt"
	"testing"

	"github.com/qqchat/qq/plugins"
)

// BenchmarkFilter measures one 200-byte message with every rule on and
// 10,000 active senders.
func BenchmarkFilter(b *testing.B) {
	f, err := newFilter([]byte(`{}`))
	if err != nil {
		b.Fatal(err)
	}
	const senders = 10000
	froms := make([]string, senders)
	for i := range froms {
		froms[i] = fmt.Sprint("user", i)
	}
	body := "Hello there, this is a perfectly ordinary chat message of about two hundred bytes, " +
		"with Mixed Case and   some   spacing, and a link to example.com/page for good measure. Thanks!!"
	body += fmt.Sprintf("%*s", 200-len(body), "")
	msg := make([]plugins.FilterMessage, 1)
	ctx := context.Background()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		msg[0] = plugins.FilterMessage{From: froms[i%senders], To: froms[(i+1)%senders], Body: body, TS: int64(i)}
		if _, err := f.Filter(ctx, msg); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
