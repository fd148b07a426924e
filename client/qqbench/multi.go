package main

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Several qqd nodes (issue 15, cluster mode): --addr and --recipient-addr
// take comma-separated lists of addresses, --qqd-pid, --pg-pid and
// --nats-pid comma-separated lists of pids.

// pidList is a flag.Value for a comma-separated list of pids.
type pidList struct{ p *[]int }

func (l pidList) String() string {
	if l.p == nil {
		return ""
	}
	s := make([]string, len(*l.p))
	for i, p := range *l.p {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ",")
}

func (l pidList) Set(v string) error {
	pids, err := parsePIDs(v)
	if err != nil {
		return err
	}
	*l.p = pids
	return nil
}

// parsePIDs parses a comma-separated list of positive pids; "" and "0"
// are the empty list (no measurement).
func parsePIDs(v string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" || f == "0" {
			continue
		}
		p, err := strconv.Atoi(f)
		if err != nil || p < 0 {
			return nil, fmt.Errorf("pid %q: want a positive integer", f)
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// splitAddrs splits a comma-separated list of addresses; "" is the empty
// list.
func splitAddrs(v string) []string {
	var out []string
	for f := range strings.SplitSeq(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// checkAddrs checks that list is a non-empty list of loopback addresses.
func checkAddrs(flagName, list string) error {
	as := splitAddrs(list)
	if len(as) == 0 {
		return fmt.Errorf("--%s: no address", flagName)
	}
	for _, a := range as {
		if err := CheckLoopback(a); err != nil {
			return err
		}
	}
	return nil
}

// firstAddr is the first address of --addr: the one that scenarios with a
// single connection point (registration, groups, attacks) use.
func (c *Config) firstAddr() string {
	if as := splitAddrs(c.Addr); len(as) > 0 {
		return as[0]
	}
	return c.Addr
}

// split reports whether dm runs split: senders on --addr, recipients on
// --recipient-addr.
func (c *Config) split() bool { return c.RecipientAddr != "" }

// senders is the number of sending users of a split dm run: u0..u<h-1>
// send, u<h>..u<Users-1> receive.
func (c *Config) senders() int { return c.Users / 2 }

// addrOf returns the address user i connects to: addr[i % n] of --addr;
// in a split dm run, recipient j (user senders()+j) connects to
// recipient-addr[j % m].
func (c *Config) addrOf(i int) string {
	if c.split() && i >= c.senders() {
		ras := splitAddrs(c.RecipientAddr)
		return ras[(i-c.senders())%len(ras)]
	}
	as := splitAddrs(c.Addr)
	if len(as) == 0 {
		return c.Addr
	}
	return as[i%len(as)]
}

// addrOfName is addrOf for user name u<i>; other names use the first
// address.
func (c *Config) addrOfName(name string) string {
	if s, ok := strings.CutPrefix(name, "u"); ok {
		if i, err := strconv.Atoi(s); err == nil && i >= 0 {
			return c.addrOf(i)
		}
	}
	return c.firstAddr()
}

// validateAddrs checks --addr and --recipient-addr.
func (c *Config) validateAddrs() error {
	if err := checkAddrs("addr", c.Addr); err != nil {
		return err
	}
	if !c.split() {
		return nil
	}
	if err := checkAddrs("recipient-addr", c.RecipientAddr); err != nil {
		return err
	}
	if c.Scenario != "dm" {
		return errors.New("--recipient-addr is for dm only")
	}
	if c.Users < 2 {
		return errors.New("dm with --recipient-addr needs --users >= 2 (half send, half receive)")
	}
	return nil
}

// procTrees reads every pid of pids and all its descendants (each process
// once, in the order of pids).
func procTrees(pids []int) []ProcStat {
	var out []ProcStat
	seen := map[int]bool{}
	for _, pid := range pids {
		ps, err := ReadProcTree(pid)
		if err != nil {
			continue
		}
		for _, p := range ps {
			if !seen[p.PID] {
				seen[p.PID] = true
				out = append(out, p)
			}
		}
	}
	return out
}

// procsOnly reads every pid of pids alone, without descendants.
func procsOnly(pids []int) []ProcStat {
	var out []ProcStat
	for _, pid := range pids {
		if p, _, err := readProc(pid); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// checkPIDs checks that every pid of every list is a running process.
func checkPIDs(lists map[string][]int) error {
	names := make([]string, 0, len(lists))
	for k := range lists {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, name := range names {
		for _, pid := range lists[name] {
			if _, _, err := readProc(pid); err != nil {
				return fmt.Errorf("--%s %d: %w", name, pid, err)
			}
		}
	}
	return nil
}
