package cli_test

import (
	"errors"
	"flag"
	"io"
	"slices"
	"testing"

	"github.com/qqchat/qq/client/cli"
)

func TestParseFlags(t *testing.T) {
	type flags struct {
		json  bool
		limit int
		to    string
	}
	tests := []struct {
		name       string
		args       []string
		flagsUntil int
		pos        []string
		flags      flags
		err        string // the error's text; "" for none
	}{
		{name: "nothing", args: nil, pos: nil},
		{name: "flags only", args: []string{"--json", "-limit=3"}, flags: flags{json: true, limit: 3}},
		{name: "flags after positionals", args: []string{"bob", "--limit", "3"}, pos: []string{"bob"}, flags: flags{limit: 3}},
		{name: "flags between positionals", args: []string{"a", "--json", "b", "--to", "x", "c"},
			pos: []string{"a", "b", "c"}, flags: flags{json: true, to: "x"}},
		{name: "double dash ends the flags", args: []string{"--json", "bob", "--", "--limit", "3"},
			pos: []string{"bob", "--limit", "3"}, flags: flags{json: true}},
		{name: "double dash first", args: []string{"--", "-n"}, pos: []string{"-n"}},
		{name: "single dash is positional", args: []string{"-", "--json"}, pos: []string{"-"}, flags: flags{json: true}},
		{name: "flags until one positional", args: []string{"--to", "c", "bob", "-n", "--json", "x"}, flagsUntil: 1,
			pos: []string{"bob", "-n", "--json", "x"}, flags: flags{to: "c"}},
		{name: "flags until two positionals", args: []string{"a", "--json", "b", "--limit", "3"}, flagsUntil: 2,
			pos: []string{"a", "b", "--limit", "3"}, flags: flags{json: true}},
		{name: "flags until, fewer positionals", args: []string{"a", "--limit", "3"}, flagsUntil: 2,
			pos: []string{"a"}, flags: flags{limit: 3}},
		{name: "unknown flag", args: []string{"bob", "--nope"}, err: "send: flag provided but not defined: -nope (see qq -h)"},
		{name: "bad value", args: []string{"--limit", "many"}, err: `send: invalid value "many" for flag -limit: parse error (see qq -h)`},
		{name: "missing value", args: []string{"bob", "--to"}, err: "send: flag needs an argument: -to (see qq -h)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got flags
			fs := flag.NewFlagSet("send", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			fs.BoolVar(&got.json, "json", false, "")
			fs.IntVar(&got.limit, "limit", 0, "")
			fs.StringVar(&got.to, "to", "", "")
			pos, err := cli.ParseFlags("qq", fs, tt.args, tt.flagsUntil)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err || cli.ExitCode(err, nil) != cli.ExitUsage {
					t.Fatalf("ParseFlags(%q) = %q, %v; want usage error %q", tt.args, pos, err, tt.err)
				}
				return
			}
			if err != nil || !slices.Equal(pos, tt.pos) || got != tt.flags {
				t.Errorf("ParseFlags(%q, %d) = %q, %v, flags %+v; want %q, flags %+v", tt.args, tt.flagsUntil, pos, err, got, tt.pos, tt.flags)
			}
		})
	}
}

func TestParseFlagsHelp(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"bob", "--help"}} {
		fs := flag.NewFlagSet("send", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		if pos, err := cli.ParseFlags("qq", fs, args, 0); !errors.Is(err, flag.ErrHelp) || pos != nil {
			t.Errorf("ParseFlags(%q) = %q, %v; want flag.ErrHelp", args, pos, err)
		}
	}
}
