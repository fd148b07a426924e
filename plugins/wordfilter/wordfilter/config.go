package wordfilter

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/qqchat/qq/plugins"
)

// Actions of a list.
const (
	ActionMask   = "mask"
	ActionReject = "reject"
)

// DefaultReason is the rejection reason of a rejecting list without one.
const DefaultReason = "message contains a blocked word"

// maxReasonBytes bounds a list's reason, which is shown to senders.
const maxReasonBytes = 200

// Config is the configuration of wordfilter: the "config" section of its
// filter entry in qq.yaml, as JSON. Unknown keys are errors.
type Config struct {
	// Lists are the word lists, checked together. At least one.
	Lists []List `json:"lists"`
}

// List is one list of entries (words or phrases) and what to do with a
// message that contains one of them. It needs at least one entry, from
// Words, File or both.
type List struct {
	// Name labels the list for operators. Optional; the filter does not
	// use it (errors name lists by index, e.g. "lists[1]").
	Name string `json:"name,omitempty"`
	// Words are entries given inline.
	Words []string `json:"words,omitempty"`
	// File is a UTF-8 text file of entries, one per line; blank lines and
	// lines whose first non-blank character is "#" are ignored. A relative
	// path is relative to the daemon's data directory. It is read once, by
	// New.
	File string `json:"file,omitempty"`
	// Action is ActionMask (the default when empty) or ActionReject.
	Action string `json:"action,omitempty"`
	// Reason is the rejection reason shown to the sender, for
	// ActionReject only: one line of at most 200 bytes. Empty means
	// DefaultReason.
	Reason string `json:"reason,omitempty"`
}

// parseConfig decodes config strictly (see plugins.DecodeConfig).
func parseConfig(config []byte) (cfg Config, errs []error, ok bool) {
	errs, ok = plugins.DecodeConfig(config, &cfg)
	return cfg, errs, ok
}

// compiledList is a validated list with its normalised entries.
type compiledList struct {
	name    string
	reject  bool
	reason  string
	entries []string // normalised (folded, whitespace collapsed), non-empty
}

// compileLists validates cfg, reads the lists' files (relative to dataDir)
// and normalises their entries. It returns every problem it finds.
func compileLists(cfg Config, dataDir string) ([]compiledList, []error) {
	var errs []error
	if len(cfg.Lists) == 0 {
		errs = append(errs, errors.New("lists: at least one list is required"))
	}
	out := make([]compiledList, 0, len(cfg.Lists))
	for i, l := range cfg.Lists {
		key := fmt.Sprintf("lists[%d]", i)
		cl := compiledList{name: l.Name, reason: l.Reason}
		switch l.Action {
		case "", ActionMask:
			if l.Reason != "" {
				errs = append(errs, fmt.Errorf("%s.reason: only used with action %q", key, ActionReject))
			}
		case ActionReject:
			cl.reject = true
			if cl.reason == "" {
				cl.reason = DefaultReason
			}
			if err := checkReason(l.Reason); err != nil {
				errs = append(errs, fmt.Errorf("%s.reason: %w", key, err))
			}
		default:
			errs = append(errs, fmt.Errorf("%s.action: unknown action %q (want %q or %q)", key, l.Action, ActionMask, ActionReject))
		}
		for j, w := range l.Words {
			n := normalizeEntry(w)
			if n == "" {
				errs = append(errs, fmt.Errorf("%s.words[%d]: empty entry", key, j))
				continue
			}
			cl.entries = append(cl.entries, n)
		}
		fileOK := true
		if l.File != "" {
			entries, err := readEntries(l.File, dataDir)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s.file: %w", key, err))
				fileOK = false
			}
			cl.entries = append(cl.entries, entries...)
		}
		if len(cl.entries) == 0 && fileOK {
			where := "in words or file"
			if l.File != "" {
				where = "in words or file " + l.File
			}
			errs = append(errs, fmt.Errorf("%s: no entries %s", key, where))
		}
		out = append(out, cl)
	}
	return out, errs
}

func checkReason(r string) error {
	switch {
	case len(r) > maxReasonBytes:
		return fmt.Errorf("longer than %d bytes", maxReasonBytes)
	case !utf8.ValidString(r):
		return errors.New("not valid UTF-8")
	case strings.ContainsFunc(r, unicode.IsControl):
		return errors.New("must be one line without control characters")
	}
	return nil
}

// readEntries reads an entry file. Errors name the file (and line).
func readEntries(name, dataDir string) ([]string, error) {
	if !filepath.IsAbs(name) && dataDir != "" {
		name = filepath.Join(dataDir, name)
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var entries []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if line == 1 {
			text = strings.TrimPrefix(text, "\uFEFF") // byte order mark
		}
		trimmed := strings.TrimSpace(text)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if !utf8.ValidString(trimmed) {
			return nil, fmt.Errorf("%s:%d: not valid UTF-8", name, line)
		}
		entries = append(entries, normalizeEntry(trimmed))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return entries, nil
}
