// Package wordfilter is a qqd message filter ([plugins.Filter]) that
// masks or rejects messages containing entries of configured word and
// phrase lists.
//
// # Lists
//
// The configuration (see [Config]) holds one or more lists. Each list has
// entries (inline "words" and/or a "file" of one entry per line, read once
// by [New]) and an action: "mask" (the default) rewrites the message with
// every matched entry masked; "reject" refuses the message with the list's
// reason. When lists of both kinds match, reject wins, with the reason of
// the first rejecting list in configuration order; a message is masked only
// when no rejecting list matches it.
//
// # Matching
//
// Entries and bodies are compared after the same normalisation: Unicode
// simple case folding (so "DARN", "Darn" and "darn" are equal, and so are
// "ÄRGER" and "ärger"), and every run of whitespace taken as one space (so
// the entry "heck off" matches "heck \t  off"; leading and trailing
// whitespace of entries is ignored). There is no other normalisation:
// no NFC/NFKC, so full-width letters, decomposed accents, look-alike
// characters, zero-width characters and "ß" against "ss" are not unified.
//
// Matches are whole words: at an end of an entry whose character is a
// word character (a letter, digit, mark or "_", not of a CJK script), the
// body character next to the match must not be a word character, so
// "darn" matches "darn!" but not "darned" or "undarn". CJK characters
// (Han, Hiragana, Katakana, Hangul, and the prolonged sound mark "ー")
// have no boundary rule: "笨蛋" matches inside "你这个笨蛋！". CJK
// characters in the body also count as a boundary for a neighbouring
// non-CJK entry, since those scripts write words without spaces: "darn"
// matches in "你darn吗". An entry mixing scripts gets the boundary rule
// only at its non-CJK word-character ends. An end that is punctuation
// (as in "c++") has no boundary rule either.
//
// # Masking
//
// Masking replaces every non-whitespace character of each matched span
// with one "*"; whitespace inside a matched phrase is kept as it was, and
// so is all text outside matches, byte for byte. Overlapping and nested
// matches are masked as their union. The masked body has the same number
// of characters as the original (counting each invalid UTF-8 byte as one),
// and is always valid UTF-8: invalid bytes of a masked body become
// U+FFFD. A masked body of valid UTF-8 is never longer, in bytes, than the
// original. A body that masking leaves unchanged gets [plugins.Allow], never
// [plugins.Rewrite]; an Allow verdict never changes the body, even when it
// is invalid UTF-8. Invalid bytes never match an entry and count as
// non-word characters.
//
// # Cost
//
// [New] compiles all entries into one Aho-Corasick automaton over
// case-folded characters. Checking a message costs time linear in its
// length (plus the number of matches found), whatever the number of
// entries; it allocates only when a message is masked. A Filter is safe
// for concurrent use and keeps no state between messages.
package wordfilter
