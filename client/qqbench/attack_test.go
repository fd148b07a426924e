package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/daemon/daemontest"
)

// TestAttackConns: connections that never log in, and slow-loris ones,
// from several source addresses are all closed by qqd's login timeout,
// one more than max_connections_per_ip from an address is refused, and
// the probe gets its pings, sends and logins through meanwhile.
func TestAttackConns(t *testing.T) {
	t.Parallel()
	for _, scenario := range []string{"conns", "slowloris"} {
		t.Run(scenario, func(t *testing.T) {
			t.Parallel()
			s := daemontest.Start(t, func(c *config.Config) {
				c.Limits.LoginTimeout = 1500 * time.Millisecond
				c.Limits.MaxConnectionsPerIP = 4
			})
			c := testConfig(s, scenario)
			c.Conns, c.PerAddr, c.FirstAddr = 10, 5, 3 // 5 from each of two addresses: one refused from each
			c.Duration, c.ProbeEvery = 2500*time.Millisecond, 50*time.Millisecond
			r, err := Run(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			a := r.Attack
			if a.Established != 8 || a.Refused != 2 || a.ClosedByQQD != 8 || a.Addrs != 2 {
				t.Fatalf("attack %+v: want 8 established (4 per address), 2 refused, 8 closed by qqd", a)
			}
			if a.ClosedAfter.Count != 8 || a.ClosedAfter.P50 < 1400 {
				t.Errorf("closed after %+v, want 8 closed by the 1.5 s login timeout", a.ClosedAfter)
			}
			if scenario == "slowloris" && a.BytesSent == 0 {
				t.Error("the slow-loris connections sent nothing")
			}
			if a.ProbePing.Count == 0 || a.ProbeSend.Count == 0 || a.ProbeLogin.Count == 0 || len(a.ProbeErrors) != 0 {
				t.Errorf("probe: ping %d, send %d, login %d ok; errors %v", a.ProbePing.Count, a.ProbeSend.Count, a.ProbeLogin.Count, a.ProbeErrors)
			}
			var buf bytes.Buffer
			r.WriteSummary(&buf)
			if !strings.Contains(buf.String(), "closed by qqd during the hold: 8") {
				t.Errorf("summary:\n%s", buf.String())
			}
		})
	}
}

// TestAttackRegflood: registrations past register_per_ip_per_minute from
// one source address are rate_limited, once exempt_networks no longer
// exempts loopback.
func TestAttackRegflood(t *testing.T) {
	t.Parallel()
	s := daemontest.Start(t, func(c *config.Config) {
		c.Limits.ExemptNetworks = []string{}
		c.Limits.RegisterPerIPPerMinute = 3
	})
	c := testConfig(s, "regflood")
	c.Conns, c.PerAddr, c.Window = 10, 5, 2 // two addresses, 5 each: 3 ok and 2 rate_limited from each
	r, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Attack.Registrations; got["ok"] != 6 || got["rate_limited"] != 4 || len(got) != 2 {
		t.Fatalf("registrations %v, want 6 ok and 4 rate_limited", got)
	}
	if l := r.Attack.RegisterLatency; l == nil || l.Count != 6 {
		t.Fatalf("register latency %+v", l)
	}
}
