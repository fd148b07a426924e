package wordfilter

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/qqchat/qq/plugins"
)

// Filter is the word filter. Create it with New. It is safe for
// concurrent use.
type Filter struct {
	lists   []compiledList
	auto    *automaton
	scratch sync.Pool // *scratch
}

// scratch holds per-call buffers, reused across calls.
type scratch struct {
	toks  []token
	spans []span
	cover []int32
}

// maxPooledTokens bounds the token buffer kept for reuse, so that one huge
// body does not pin its buffers.
const maxPooledTokens = 64 << 10

var _ plugins.FilterFactory = New

// New is the [plugins.FilterFactory] of wordfilter. It decodes and
// validates config (see [Config]), reads the lists' files (relative paths
// against env.DataDir) and compiles the entries. All problems are
// reported together, each naming its key.
func New(env plugins.Env, config []byte) (plugins.Filter, error) {
	f, err := newFilter(env, config)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func newFilter(env plugins.Env, config []byte) (*Filter, error) {
	cfg, errs, ok := parseConfig(config)
	if !ok {
		return nil, fmt.Errorf("wordfilter: invalid config: %w", errors.Join(errs...))
	}
	lists, lerrs := compileLists(cfg, env.DataDir)
	if errs = append(errs, lerrs...); len(errs) > 0 {
		return nil, fmt.Errorf("wordfilter: invalid config: %w", errors.Join(errs...))
	}
	f := &Filter{lists: lists, auto: build(lists)}
	f.scratch.New = func() any { return new(scratch) }
	return f, nil
}

// Filter returns one verdict per message, at the same index; see the
// package documentation for the rules. It fails only when ctx is done.
func (f *Filter) Filter(ctx context.Context, msgs []plugins.FilterMessage) ([]plugins.Verdict, error) {
	out := make([]plugins.Verdict, len(msgs))
	for i := range msgs {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("wordfilter: %w", err)
		}
		out[i] = f.Check(msgs[i].Body)
	}
	return out, nil
}

// Check returns the verdict for one message body: Reject with the reason
// of the first rejecting list that matches, else Rewrite with the masked
// body when masking changes it, else Allow.
func (f *Filter) Check(body string) plugins.Verdict {
	sc := f.scratch.Get().(*scratch)
	defer f.putScratch(sc)

	sc.toks = tokenize(body, sc.toks[:0])
	reject, spans := f.auto.scan(sc.toks, sc.spans[:0])
	sc.spans = spans
	if reject >= 0 {
		return plugins.Verdict{Action: plugins.Reject, Reason: f.lists[reject].reason}
	}
	if len(spans) == 0 {
		return plugins.Verdict{Action: plugins.Allow}
	}
	masked := mask(body, sc.toks, spans, sc)
	if masked == body {
		return plugins.Verdict{Action: plugins.Allow}
	}
	return plugins.Verdict{Action: plugins.Rewrite, Body: masked}
}

func (f *Filter) putScratch(sc *scratch) {
	if cap(sc.toks) > maxPooledTokens {
		return
	}
	f.scratch.Put(sc)
}

// mask returns body with every non-whitespace token covered by a span
// replaced by "*", and invalid bytes replaced by U+FFFD.
func mask(body string, toks []token, spans []span, sc *scratch) string {
	cover := sc.cover[:0]
	cover = append(cover, make([]int32, len(toks)+1)...)
	sc.cover = cover
	for _, s := range spans {
		cover[s.start]++
		cover[s.end]--
	}
	var b strings.Builder
	b.Grow(len(body))
	depth := int32(0)
	for i, t := range toks {
		depth += cover[i]
		end := len(body)
		if i+1 < len(toks) {
			end = toks[i+1].off
		}
		switch {
		case t.r == invalidRune:
			b.WriteRune(utf8.RuneError)
		case depth > 0 && t.r != space:
			b.WriteByte('*')
		default:
			b.WriteString(body[t.off:end])
		}
	}
	return b.String()
}
