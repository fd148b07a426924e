// Command nolinks is a qq filter plugin: it refuses messages that contain
// a link (http:// or https://), except links to the hosts its
// configuration allows.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/qqchat/qq/plugins"
)

// config is the plugin's "config" section in qq.yaml.
type config struct {
	// AllowHosts are the hosts that links may point to, e.g. "qq.example".
	AllowHosts []string `json:"allow_hosts"`
	// Reason is what the sender of a refused message is told.
	Reason string `json:"reason"`
}

// noLinks is the filter.
type noLinks struct {
	allow  map[string]bool
	reason string
}

// newNoLinks is the plugin's factory: qqd calls it (through
// plugins.ServeFilter) with the config section as JSON. Its error, with
// every problem in it, is what the operator sees when qqd refuses to start.
func newNoLinks(_ plugins.Env, raw []byte) (plugins.Filter, error) {
	var c config
	// DecodeConfig is strict: a misspelt key is an error, not ignored.
	errs, ok := plugins.DecodeConfig(raw, &c)
	if ok {
		for i, h := range c.AllowHosts {
			if h == "" || strings.ContainsAny(h, "/: ") {
				errs = append(errs, fmt.Errorf("allow_hosts[%d]: want a host name such as \"qq.example\", got %q", i, h))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("nolinks: %w", err)
	}
	f := &noLinks{allow: make(map[string]bool), reason: c.Reason}
	if f.reason == "" {
		f.reason = "links are not allowed here"
	}
	for _, h := range c.AllowHosts {
		f.allow[strings.ToLower(h)] = true
	}
	return f, nil
}

// Filter returns one verdict per message, at the same index. The zero
// Verdict allows the message.
func (f *noLinks) Filter(ctx context.Context, msgs []plugins.FilterMessage) ([]plugins.Verdict, error) {
	vs := make([]plugins.Verdict, len(msgs))
	for i, m := range msgs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for _, word := range strings.Fields(m.Body) {
			u, err := url.Parse(strings.Trim(word, `()<>[]{}"'.,;:!?`))
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
				continue
			}
			if !f.allow[strings.ToLower(u.Hostname())] {
				vs[i] = plugins.Verdict{Action: plugins.Reject, Reason: f.reason}
				break
			}
		}
	}
	return vs, nil
}

func main() { plugins.ServeFilter(newNoLinks) }
