package antispam

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/qqchat/qq/plugins/casefold"
)

// hasLink reports whether body contains something that looks like a
// link: "http://" or "https://"; "www." followed by a letter or digit; or
// a domain name ("label.tld", letters, digits and "-") whose top-level
// label of 2..24 letters is followed by "/" or ":" and a digit (a path or
// a port), or is a common top-level domain (isCommonTLD). Each must start
// at a word boundary, as with regexp's \b: "file.txt", "e.g." and "3.14"
// are not links. Only ASCII domains are recognised. The cost is linear in
// len(body).
func hasLink(body string) bool {
	for i := 0; i < len(body); i++ {
		switch body[i] {
		case ':':
			if strings.HasPrefix(body[i:], "://") && schemeBefore(body[:i]) {
				return true
			}
		case '.':
			if linkAroundDot(body, i) {
				return true
			}
		}
	}
	return false
}

// schemeBefore reports whether s ends with the word "http" or "https".
func schemeBefore(s string) bool {
	for _, scheme := range [...]string{"http", "https"} {
		n := len(s) - len(scheme)
		if n >= 0 && strings.EqualFold(s[n:], scheme) && (n == 0 || !isWordByte(s[n-1])) {
			return true
		}
	}
	return false
}

// linkAroundDot reports whether the "." at body[dot] ends a label of a
// link: "www." and a host, or a domain label followed by a top-level one.
func linkAroundDot(body string, dot int) bool {
	if dot == 0 || !isAlnum(body[dot-1]) || dot+1 == len(body) {
		return false
	}
	// The label before the dot, and the label's start on a word boundary
	// (or an earlier label of the same name).
	start := dot - 1
	for start > 0 && (isAlnum(body[start-1]) || body[start-1] == '-') {
		start--
	}
	for body[start] == '-' { // labels do not start with "-"
		start++
	}
	if start > 0 && isWordByte(body[start-1]) {
		return false
	}
	if strings.EqualFold(body[start:dot], "www") && isAlnum(body[dot+1]) {
		return true
	}
	end := dot + 1
	for end < len(body) && isLetter(body[end]) {
		end++
	}
	tld := body[dot+1 : end]
	if len(tld) < 2 || len(tld) > 24 {
		return false
	}
	if end < len(body) {
		c := body[end]
		if c == '/' || c == ':' && end+1 < len(body) && '0' <= body[end+1] && body[end+1] <= '9' {
			return true // a path or a port
		}
		if isWordByte(c) {
			return false
		}
	}
	return isCommonTLD(tld)
}

// isCommonTLD reports whether tld (any case) is a top-level domain common
// enough, and common enough in spam, that "name.tld" is a link even
// without a path.
func isCommonTLD(tld string) bool {
	var buf [24]byte
	lower := buf[:len(tld)]
	for i := range len(tld) {
		lower[i] = tld[i] | 0x20 // tld is ASCII letters
	}
	switch string(lower) {
	case "com", "net", "org", "info", "biz", "io", "co", "me", "ly", "gg", "to", "tv",
		"cc", "ws", "ru", "su", "cn", "uk", "us", "de", "fr", "nl", "in", "br", "jp",
		"kr", "tk", "ml", "ga", "cf", "gq", "pw", "xyz", "top", "club", "online", "site",
		"shop", "store", "app", "dev", "link", "click", "live", "icu", "vip", "win",
		"bid", "loan", "work", "buzz", "fun", "cam", "sbs", "cfd", "lol", "today", "rest":
		return true
	}
	return false
}

func isLetter(c byte) bool   { return 'a' <= c|0x20 && c|0x20 <= 'z' }
func isAlnum(c byte) bool    { return isLetter(c) || '0' <= c && c <= '9' }
func isWordByte(c byte) bool { return isAlnum(c) || c == '_' }

// appendNormalized appends body to buf case-folded, with every run of
// whitespace as one space and without leading or trailing whitespace.
// Invalid UTF-8 bytes become U+FFFD.
func appendNormalized(buf []byte, body string) []byte {
	start := len(buf)
	pendingSpace := false
	for _, r := range body {
		if unicode.IsSpace(r) {
			pendingSpace = len(buf) > start
			continue
		}
		if pendingSpace {
			buf = append(buf, ' ')
			pendingSpace = false
		}
		buf = utf8.AppendRune(buf, casefold.Rune(r))
	}
	return buf
}
