package web

import (
	"net"
	"net/netip"
	"testing"
)

// TestClientAddr: X-Forwarded-For is believed only from a trusted proxy,
// read from the right, and only up to the first untrusted or malformed
// hop.
func TestClientAddr(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	proxy := &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 4711}
	stranger := &net.TCPAddr{IP: net.ParseIP("198.51.100.9"), Port: 4711}
	v6proxy := &net.TCPAddr{IP: net.ParseIP("::1"), Port: 4711}
	for _, tc := range []struct {
		name      string
		peer      net.Addr
		forwarded []string
		trusted   []netip.Prefix
		want      string
	}{
		{"no proxies trusted", proxy, []string{"203.0.113.7"}, nil, "127.0.0.1:4711"},
		{"untrusted peer", stranger, []string{"203.0.113.7"}, trusted, "198.51.100.9:4711"},
		{"trusted, no header", proxy, nil, trusted, "127.0.0.1:4711"},
		{"one hop", proxy, []string{"203.0.113.7"}, trusted, "203.0.113.7:0"},
		{"ipv6 proxy", v6proxy, []string{"2001:db8::5"}, trusted, "[2001:db8::5]:0"},
		{"client-written hops are skipped", proxy, []string{"1.2.3.4, 203.0.113.7"}, trusted, "203.0.113.7:0"},
		{"a chain of trusted proxies", proxy, []string{"203.0.113.7, 10.1.2.3", "10.0.0.1"}, trusted, "203.0.113.7:0"},
		{"all trusted: the leftmost", proxy, []string{"10.9.9.9, 10.0.0.1"}, trusted, "10.9.9.9:0"},
		{"malformed hop stops the walk", proxy, []string{"203.0.113.7, garbage, 10.0.0.1"}, trusted, "10.0.0.1:0"},
		{"malformed last hop", proxy, []string{"203.0.113.7, nonsense"}, trusted, "127.0.0.1:4711"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := clientAddr(tc.peer, tc.forwarded, tc.trusted).String(); got != tc.want {
				t.Errorf("clientAddr = %s, want %s", got, tc.want)
			}
		})
	}
}
