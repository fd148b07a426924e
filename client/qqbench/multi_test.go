package main

import (
	"bytes"
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qqchat/qq/daemon/daemontest"
)

func TestParsePIDs(t *testing.T) {
	tests := []struct {
		in   string
		want []int
		bad  bool
	}{
		{"", nil, false},
		{"0", nil, false},
		{"42", []int{42}, false},
		{"42,7, 9", []int{42, 7, 9}, false},
		{"42,42,7", []int{42, 7}, false},
		{"42,,7", []int{42, 7}, false},
		{"x", nil, true},
		{"1,-3", nil, true},
	}
	for _, tt := range tests {
		got, err := parsePIDs(tt.in)
		if (err != nil) != tt.bad || !slices.Equal(got, tt.want) {
			t.Errorf("parsePIDs(%q) = %v, %v; want %v (error %v)", tt.in, got, err, tt.want, tt.bad)
		}
	}
}

func TestParseArgsMultiNode(t *testing.T) {
	c, err := parseArgs(strings.Fields("--addr 127.0.0.1:1,127.0.0.1:2,127.0.0.1:3 --qqd-pid 10,11,12 --pg-pid 20 --nats-pid 30 --users 7 dm --window 2"), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.QQDPIDs, []int{10, 11, 12}) || !slices.Equal(c.PGPIDs, []int{20}) || !slices.Equal(c.NATSPIDs, []int{30}) {
		t.Fatalf("pids %v %v %v", c.QQDPIDs, c.PGPIDs, c.NATSPIDs)
	}
	var got []string
	for i := range 7 {
		got = append(got, c.addrOf(i))
	}
	want := []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:1"}
	if !slices.Equal(got, want) {
		t.Fatalf("addrOf = %v, want %v", got, want)
	}
	if c.firstAddr() != "127.0.0.1:1" || c.addrOfName("u4") != "127.0.0.1:2" || c.addrOfName("owner") != "127.0.0.1:1" {
		t.Fatalf("firstAddr %s, addrOfName(u4) %s, addrOfName(owner) %s", c.firstAddr(), c.addrOfName("u4"), c.addrOfName("owner"))
	}

	// Split: u0..u2 send from --addr, u3..u5 receive on --recipient-addr.
	c, err = parseArgs(strings.Fields("--addr 127.0.0.1:1 --recipient-addr 127.0.0.1:2,127.0.0.1:3 --users 6 dm"), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	for i := range 6 {
		got = append(got, c.addrOf(i))
	}
	want = []string{"127.0.0.1:1", "127.0.0.1:1", "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:2"}
	if !c.split() || c.senders() != 3 || !slices.Equal(got, want) {
		t.Fatalf("split %v senders %d addrOf = %v, want %v", c.split(), c.senders(), got, want)
	}

	for _, args := range []string{
		"--addr 127.0.0.1:1,10.0.0.1:2 --users 4 dm",            // not loopback
		"--addr , --users 4 dm",                                 // no address
		"--recipient-addr 10.0.0.1:2 --users 4 dm",              // not loopback
		"--recipient-addr 127.0.0.1:2 --users 4 fanin",          // dm only
		"--recipient-addr 127.0.0.1:2 --users 4 --qqd-pid x dm", // bad pid
	} {
		if _, err := parseArgs(strings.Fields(args), &bytes.Buffer{}); err == nil {
			t.Errorf("parseArgs(%q) = nil error, want one", args)
		}
	}
}

func TestProcName(t *testing.T) {
	tests := []struct {
		i    int
		p    ProcStat
		want string
	}{
		{0, ProcStat{Comm: "qqd", Cmd: "qqd -config /a/qq.yaml"}, "qqd"},
		{1, ProcStat{Comm: "qqd", Cmd: "qqd plugin sqlite"}, "sqlite"},
		{3, ProcStat{Comm: "qqd", Cmd: "qqd -config /b/qq.yaml"}, "qqd"},
		{4, ProcStat{Comm: "postgres", Cmd: "postgres"}, "postgres"},
	}
	for _, tt := range tests {
		if got := procName(tt.i, tt.p); got != tt.want {
			t.Errorf("procName(%d, %+v) = %q, want %q", tt.i, tt.p, got, tt.want)
		}
	}
}

// TestDMSplit runs the split dm on one server reached at two addresses
// (the same listener twice): only the recipients get pushes, and the
// extra pid lists are read.
func TestDMSplit(t *testing.T) {
	t.Parallel()
	s := daemontest.Start(t)
	c := testConfig(s, "dm")
	c.Addr = s.Addr + "," + s.Addr
	c.RecipientAddr = s.Addr
	c.Users, c.Window, c.Duration = 6, 2, time.Second
	c.QQDPIDs = []int{os.Getpid()}
	c.PGPIDs = []int{os.Getpid()}   // any process: exercises the reading
	c.NATSPIDs = []int{os.Getpid()} // idem
	r, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if r.Delivered == 0 || r.Lost != 0 || r.Unanswered != 0 || len(r.Errors) != 0 {
		t.Fatalf("delivered %d lost %d unanswered %d errors %v", r.Delivered, r.Lost, r.Unanswered, r.Errors)
	}
	if r.RecipientAddr != s.Addr || r.PGCPUSeconds < 0 || r.NATSCPUSeconds < 0 {
		t.Fatalf("result %+v", r)
	}
}
