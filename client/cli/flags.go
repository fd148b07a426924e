package cli

import (
	"errors"
	"flag"
)

// ParseFlags parses args with fs as the tools' commands do: flags may
// stand before, between and after the positional arguments (fs.Parse
// alone stops at the first positional one), which it returns in order.
// After "--", and after flagsUntil positional arguments when flagsUntil >
// 0, everything is positional: with flagsUntil 1, "bob -n --json" is the
// recipient bob and a text of two words, not two flags.
//
// It returns flag.ErrHelp as it is for -h or -help. Any other error of
// fs, such as an unknown flag or a bad value, becomes a usage error of
// tool (see Usagef) that starts with fs's name. fs should be made with
// flag.ContinueOnError and its output discarded: the tools print the
// error themselves.
func ParseFlags(tool string, fs *flag.FlagSet, args []string, flagsUntil int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, Usagef(tool, "%s: %v", fs.Name(), err)
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
		if flagsUntil > 0 && len(pos) >= flagsUntil {
			return append(pos, args...), nil
		}
	}
}
