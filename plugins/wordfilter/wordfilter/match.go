package wordfilter

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/qqchat/qq/plugins/casefold"
)

const (
	// invalidRune stands for an invalid UTF-8 byte of a body. No entry
	// contains it, so it never matches, and it is not a word character.
	invalidRune rune = -1
	// space stands for a run of whitespace, in entries and bodies.
	space rune = ' '
)

// isCJK reports whether r belongs to a script written without spaces
// between words, where entries match as plain substrings.
func isCJK(r rune) bool {
	if r < 0x1100 { // below Hangul Jamo, the first of these blocks
		return false
	}
	return unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul) ||
		r == 0x30FC || r == 0xFF70 // prolonged sound marks (script Common)
}

// isWord reports whether r is a word character for the boundary rule: a
// letter, digit, mark or underscore, not of a CJK script.
func isWord(r rune) bool {
	if r < utf8.RuneSelf {
		return r == '_' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'
	}
	return (unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)) && !isCJK(r)
}

// normalizeEntry folds the case of s, turns every run of whitespace into
// one space and trims it. Invalid UTF-8 becomes U+FFFD.
func normalizeEntry(s string) string {
	var b strings.Builder
	pendingSpace := false
	for _, r := range s {
		if unicode.IsSpace(r) {
			pendingSpace = b.Len() > 0
			continue
		}
		if pendingSpace {
			b.WriteRune(space)
			pendingSpace = false
		}
		b.WriteRune(casefold.Rune(r))
	}
	return b.String()
}

// token is one character of a normalised body: a case-folded rune, a
// whole run of whitespace (space) or an invalid byte (invalidRune),
// starting at byte off of the body and ending where the next token starts.
type token struct {
	r   rune
	off int
}

// tokenize appends the tokens of body to toks.
func tokenize(body string, toks []token) []token {
	for i := 0; i < len(body); {
		c := body[i]
		if c < utf8.RuneSelf {
			if asciiSpace[c] {
				start := i
				for i++; i < len(body); {
					r, n := utf8.DecodeRuneInString(body[i:])
					if !unicode.IsSpace(r) {
						break
					}
					i += n
				}
				toks = append(toks, token{space, start})
				continue
			}
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			toks = append(toks, token{rune(c), i})
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(body[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			toks = append(toks, token{invalidRune, i})
		case unicode.IsSpace(r):
			start := i
			for i += n; i < len(body); {
				r, n := utf8.DecodeRuneInString(body[i:])
				if !unicode.IsSpace(r) {
					break
				}
				i += n
			}
			toks = append(toks, token{space, start})
			continue
		default:
			toks = append(toks, token{casefold.Rune(r), i})
		}
		i += n
	}
	return toks
}

// asciiSpace is unicode.IsSpace for ASCII bytes.
var asciiSpace = [utf8.RuneSelf]bool{'\t': true, '\n': true, '\v': true, '\f': true, '\r': true, ' ': true}

// pattern is a distinct normalised entry, which may be in several lists.
type pattern struct {
	n          int  // length in tokens
	start, end bool // whether the boundary rule applies at each end
	reject     int  // index of the first rejecting list holding it, or -1
	mask       bool // whether a masking list holds it
}

// automaton is an Aho-Corasick automaton over the entries of all lists.
// Node 0 is the root. It is immutable once built.
type automaton struct {
	edges map[uint64]int32     // (node<<32 | rune) -> child
	root  [utf8.RuneSelf]int32 // root's children for ASCII runes (0: none)
	fail  []int32              // longest proper suffix that is a node
	out   []int32              // pattern ending at the node, or -1
	dict  []int32              // nearest node on the fail chain with out >= 0, or -1
	pats  []pattern
}

func edgeKey(node int32, r rune) uint64 { return uint64(node)<<32 | uint64(uint32(r)) }

// build compiles the lists' entries.
func build(lists []compiledList) *automaton {
	a := &automaton{edges: make(map[uint64]int32)}
	type kid struct {
		r rune
		c int32
	}
	kids := [][]kid{nil}
	a.out = []int32{-1}
	byEntry := make(map[string]int32)
	for li, l := range lists {
		for _, e := range l.entries {
			p, ok := byEntry[e]
			if !ok {
				rs := []rune(e)
				node := int32(0)
				for _, r := range rs {
					c, ok := a.edges[edgeKey(node, r)]
					if !ok {
						c = int32(len(a.out))
						a.out = append(a.out, -1)
						kids = append(kids, nil)
						a.edges[edgeKey(node, r)] = c
						kids[node] = append(kids[node], kid{r, c})
						if node == 0 && r >= 0 && r < utf8.RuneSelf {
							a.root[r] = c
						}
					}
					node = c
				}
				p = int32(len(a.pats))
				a.pats = append(a.pats, pattern{
					n:      len(rs),
					start:  isWord(rs[0]),
					end:    isWord(rs[len(rs)-1]),
					reject: -1,
				})
				a.out[node] = p
				byEntry[e] = p
			}
			if l.reject {
				if a.pats[p].reject < 0 {
					a.pats[p].reject = li
				}
			} else {
				a.pats[p].mask = true
			}
		}
	}
	a.fail = make([]int32, len(a.out))
	a.dict = make([]int32, len(a.out))
	a.dict[0] = -1
	queue := []int32{0}
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		for _, k := range kids[u] {
			if u != 0 {
				a.fail[k.c] = a.next(a.fail[u], k.r)
			}
			f := a.fail[k.c]
			if a.out[f] >= 0 {
				a.dict[k.c] = f
			} else {
				a.dict[k.c] = a.dict[f]
			}
			queue = append(queue, k.c)
		}
	}
	return a
}

// next is the automaton's transition from node s on rune r.
func (a *automaton) next(s int32, r rune) int32 {
	for {
		if s == 0 {
			if uint32(r) < utf8.RuneSelf {
				return a.root[r]
			}
			return a.edges[edgeKey(0, r)] // 0 when absent
		}
		if c, ok := a.edges[edgeKey(s, r)]; ok {
			return c
		}
		s = a.fail[s]
	}
}

// span is a matched range of tokens [start, end) to mask.
type span struct{ start, end int }

// scan finds the entries in toks. It returns the index of the first
// rejecting list with a match (or -1) and, when there is none, appends
// the spans to mask to spans.
func (a *automaton) scan(toks []token, spans []span) (int, []span) {
	reject := -1
	s := int32(0)
	for i, t := range toks {
		s = a.next(s, t.r)
		m := s
		if a.out[m] < 0 {
			m = a.dict[m]
		}
		for ; m >= 0; m = a.dict[m] {
			p := &a.pats[a.out[m]]
			start := i + 1 - p.n
			if p.start && start > 0 && isWord(toks[start-1].r) ||
				p.end && i+1 < len(toks) && isWord(toks[i+1].r) {
				continue
			}
			if p.reject >= 0 && (reject < 0 || p.reject < reject) {
				reject = p.reject
				if reject == 0 {
					return reject, spans
				}
			}
			if p.mask && reject < 0 {
				spans = append(spans, span{start, i + 1})
			}
		}
	}
	return reject, spans
}
