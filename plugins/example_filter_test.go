package plugins_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/qqchat/qq/plugins"
)

// quietConfig is the configuration of the quiet filter: its "config"
// section in qq.yaml, which qqd gives the factory as JSON.
type quietConfig struct {
	// Banned are words that get a message rejected.
	Banned []string `json:"banned"`
	// Reason is what the sender of a rejected message is told.
	Reason string `json:"reason"`
}

// quiet is a filter: it rejects messages that contain a banned word,
// rewrites messages written in capitals to lower case, and allows the
// rest.
type quiet struct {
	banned map[string]bool
	reason string
}

// newQuiet is the filter's plugins.FilterFactory. The plugin is a command
// of its own whose main is
//
//	func main() { plugins.ServeFilter(newQuiet) }
//
// (docs/plugins.md builds one step by step, in a module of its own.)
func newQuiet(_ plugins.Env, config []byte) (plugins.Filter, error) {
	var c quietConfig
	// Strict: a misspelt key is an error, not a setting silently ignored.
	errs, ok := plugins.DecodeConfig(config, &c)
	if ok && len(c.Banned) > 0 && c.Reason == "" {
		errs = append(errs, errors.New("reason: must be set when banned is"))
	}
	// Report every problem at once: qqd shows this text to the operator.
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("quiet: %w", err)
	}
	q := &quiet{banned: make(map[string]bool), reason: c.Reason}
	for _, w := range c.Banned {
		q.banned[strings.ToLower(w)] = true
	}
	return q, nil
}

// Filter returns one verdict per message, at the same index.
func (q *quiet) Filter(ctx context.Context, msgs []plugins.FilterMessage) ([]plugins.Verdict, error) {
	vs := make([]plugins.Verdict, len(msgs))
	for i, m := range msgs {
		if err := ctx.Err(); err != nil {
			return nil, err // the whole batch fails: qqd applies on_failure
		}
		switch {
		case q.hasBanned(m.Body):
			vs[i] = plugins.Verdict{Action: plugins.Reject, Reason: q.reason}
		case shouting(m.Body):
			vs[i] = plugins.Verdict{Action: plugins.Rewrite, Body: strings.ToLower(m.Body)}
		default:
			vs[i] = plugins.Verdict{Action: plugins.Allow}
		}
	}
	return vs, nil
}

func (q *quiet) hasBanned(body string) bool {
	words := strings.FieldsFunc(strings.ToLower(body), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsNumber(r)
	})
	for _, w := range words {
		if q.banned[w] {
			return true
		}
	}
	return false
}

// shouting reports whether s has letters and all of them are capitals.
func shouting(s string) bool {
	return strings.ToUpper(s) == s && strings.ToLower(s) != s
}

// A filter plugin is a plugins.Filter, a factory that makes it from its
// configuration, and a main that serves the factory. Here the filter is
// called directly; qqd calls it the same way, in batches, across the
// process boundary.
func Example_filterPlugin() {
	f, err := newQuiet(plugins.Env{}, []byte(`{"banned": ["spam"], "reason": "no spam here"}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	vs, err := f.Filter(context.Background(), []plugins.FilterMessage{
		{From: "alice", To: "bob", Body: "lunch at noon?"},
		{From: "alice", To: "bob", Body: "WHERE ARE YOU"},
		{From: "mallory", To: "bob", Body: "Cheap SPAM, buy now"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, v := range vs {
		switch v.Action {
		case plugins.Allow:
			fmt.Println("allow")
		case plugins.Rewrite:
			fmt.Printf("rewrite to %q\n", v.Body)
		case plugins.Reject:
			fmt.Printf("reject: %s\n", v.Reason)
		}
	}

	// A configuration the factory refuses, as the operator sees it.
	_, err = newQuiet(plugins.Env{}, []byte(`{"baned": ["spam"]}`))
	fmt.Println(err)

	// Output:
	// allow
	// rewrite to "where are you"
	// reject: no spam here
	// quiet: baned: unknown key
}
