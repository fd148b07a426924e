package plugins

// Logging on the host: go-plugin's own messages (an hclog.Logger) and the
// plugin process's stderr and stdout lines, all relayed to the instance's
// slog.Logger.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"

	hclog "github.com/hashicorp/go-hclog"
)

// levelTrace is hclog's Trace level in slog terms.
const levelTrace = slog.LevelDebug - 4

// hclogAdapter is an hclog.Logger that logs to a slog.Logger, keeping
// levels. go-plugin reads the plugin's stderr itself and logs each line
// through Named(<command base name>); that sub-logger is off, because the
// lines reach the log through the ClientConfig.Stderr relay instead (which
// understands slog's formats).
type hclogAdapter struct {
	log       *slog.Logger
	name      string
	implied   []any
	stderrLog string // the name go-plugin's stderr reader uses
	off       bool
}

var _ hclog.Logger = (*hclogAdapter)(nil)

func newHCLogAdapter(l *slog.Logger, stderrLog string) *hclogAdapter {
	return &hclogAdapter{log: l, stderrLog: stderrLog}
}

func hclogToSlog(level hclog.Level) slog.Level {
	switch level {
	case hclog.Trace:
		return levelTrace
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	}
	return slog.LevelInfo
}

func (a *hclogAdapter) Log(level hclog.Level, msg string, args ...any) {
	if a.off || level == hclog.Off {
		return
	}
	lv := hclogToSlog(level)
	ctx := context.Background()
	if !a.log.Enabled(ctx, lv) {
		return
	}
	attrs := make([]any, 0, len(a.implied)+len(args)+2)
	if a.name != "" {
		attrs = append(attrs, "module", a.name)
	}
	attrs = appendHCArgs(attrs, a.implied)
	attrs = appendHCArgs(attrs, args)
	a.log.Log(ctx, lv, msg, attrs...)
}

// appendHCArgs appends hclog's key/value pairs as slog ones. go-plugin's
// "plugin" key (the command path) is renamed so as not to hide the
// instance name.
func appendHCArgs(dst, args []any) []any {
	for i := 0; i < len(args); i += 2 {
		key, ok := args[i].(string)
		if !ok {
			key = "!BADKEY"
		}
		if key == "plugin" {
			key = "plugin_path"
		}
		var v any = "<missing>"
		if i+1 < len(args) {
			v = args[i+1]
		}
		if f, ok := v.(hclog.Format); ok && len(f) > 0 {
			if format, ok := f[0].(string); ok {
				v = fmt.Sprintf(format, f[1:]...)
			}
		}
		dst = append(dst, key, v)
	}
	return dst
}

func (a *hclogAdapter) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }
func (a *hclogAdapter) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }
func (a *hclogAdapter) Info(msg string, args ...any)  { a.Log(hclog.Info, msg, args...) }
func (a *hclogAdapter) Warn(msg string, args ...any)  { a.Log(hclog.Warn, msg, args...) }
func (a *hclogAdapter) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }

func (a *hclogAdapter) enabled(level hclog.Level) bool {
	return !a.off && a.log.Enabled(context.Background(), hclogToSlog(level))
}

func (a *hclogAdapter) IsTrace() bool { return a.enabled(hclog.Trace) }
func (a *hclogAdapter) IsDebug() bool { return a.enabled(hclog.Debug) }
func (a *hclogAdapter) IsInfo() bool  { return a.enabled(hclog.Info) }
func (a *hclogAdapter) IsWarn() bool  { return a.enabled(hclog.Warn) }
func (a *hclogAdapter) IsError() bool { return a.enabled(hclog.Error) }

func (a *hclogAdapter) ImpliedArgs() []any { return slices.Clone(a.implied) }

func (a *hclogAdapter) With(args ...any) hclog.Logger {
	b := *a
	b.implied = append(slices.Clone(a.implied), args...)
	return &b
}

func (a *hclogAdapter) Name() string { return a.name }

func (a *hclogAdapter) Named(name string) hclog.Logger {
	b := *a
	if name == a.stderrLog && a.name == "" {
		b.off = true
	}
	if a.name != "" {
		name = a.name + "." + name
	}
	b.name = name
	return &b
}

func (a *hclogAdapter) ResetNamed(name string) hclog.Logger {
	b := *a
	b.name = name
	b.off = name == a.stderrLog
	return &b
}

// SetLevel does nothing: the slog handler decides.
func (a *hclogAdapter) SetLevel(hclog.Level) {}

func (a *hclogAdapter) GetLevel() hclog.Level {
	for _, l := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn, hclog.Error} {
		if a.enabled(l) {
			return l
		}
	}
	return hclog.Off
}

func (a *hclogAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(a.StandardWriter(opts), "", 0)
}

func (a *hclogAdapter) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		a.Info(strings.TrimRight(string(p), "\r\n"))
		return len(p), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// maxRelayLine bounds a relayed line; longer ones are cut into pieces.
const maxRelayLine = 64 << 10

// lineRelay is an io.Writer that logs every line written to it: a JSON
// object (slog's JSONHandler, hclog's JSON) or a logfmt line (slog's
// TextHandler) becomes a record with the line's level, message and
// attributes; any other line is logged whole, at the level a "[LEVEL]"
// prefix names, at error from a panic on, else at info.
type lineRelay struct {
	log *slog.Logger

	mu      sync.Mutex
	buf     []byte
	inPanic bool
}

func newLineRelay(l *slog.Logger) *lineRelay { return &lineRelay{log: l} }

func (r *lineRelay) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = append(r.buf, p...)
	start := 0
	for {
		i := bytes.IndexByte(r.buf[start:], '\n')
		if i < 0 {
			break
		}
		r.emit(r.buf[start : start+i])
		start += i + 1
	}
	for len(r.buf)-start >= maxRelayLine {
		r.emit(r.buf[start : start+maxRelayLine])
		start += maxRelayLine
	}
	r.buf = r.buf[:copy(r.buf, r.buf[start:])]
	return len(p), nil
}

// Flush logs a last unterminated line.
func (r *lineRelay) Flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.buf) > 0 {
		r.emit(r.buf)
		r.buf = r.buf[:0]
	}
}

func (r *lineRelay) emit(line []byte) {
	line = bytes.TrimRight(line, "\r")
	if len(bytes.TrimSpace(line)) == 0 {
		return
	}
	ctx := context.Background()
	if !r.inPanic {
		if lv, msg, attrs, ok := parseJSONLine(line); ok {
			r.log.Log(ctx, lv, msg, attrs...)
			return
		}
		if lv, msg, attrs, ok := parseLogfmtLine(line); ok {
			r.log.Log(ctx, lv, msg, attrs...)
			return
		}
	}
	s := string(line)
	lv := slog.LevelInfo
	switch {
	case strings.HasPrefix(s, "panic: "), strings.HasPrefix(s, "fatal error: "):
		r.inPanic = true
		lv = slog.LevelError
	case r.inPanic:
		lv = slog.LevelError
	case strings.HasPrefix(s, "[TRACE]"):
		lv = levelTrace
	case strings.HasPrefix(s, "[DEBUG]"):
		lv = slog.LevelDebug
	case strings.HasPrefix(s, "[WARN]"):
		lv = slog.LevelWarn
	case strings.HasPrefix(s, "[ERROR]"):
		lv = slog.LevelError
	}
	r.log.Log(ctx, lv, s)
}

// parseLevel reads a level as slog ("INFO", "WARN+2") or hclog ("trace",
// "warning") writes it.
func parseLevel(s string) (slog.Level, bool) {
	var lv slog.Level
	if lv.UnmarshalText([]byte(s)) == nil {
		return lv, true
	}
	switch strings.ToLower(s) {
	case "trace":
		return levelTrace, true
	case "warning":
		return slog.LevelWarn, true
	}
	return 0, false
}

// parseJSONLine reads a JSON log record: level from "level" or "@level",
// message from "msg" or "@message", the time dropped, other keys as
// attributes in key order.
func parseJSONLine(line []byte) (slog.Level, string, []any, bool) {
	if len(line) == 0 || line[0] != '{' {
		return 0, "", nil, false
	}
	var rec map[string]any
	if json.Unmarshal(line, &rec) != nil {
		return 0, "", nil, false
	}
	lv, msg, found := slog.LevelInfo, "", false
	for _, k := range []string{"level", "@level"} {
		if s, ok := rec[k].(string); ok {
			if l, ok := parseLevel(s); ok {
				lv, found = l, true
				delete(rec, k)
			}
		}
	}
	for _, k := range []string{"msg", "@message"} {
		if s, ok := rec[k].(string); ok {
			msg, found = s, true
			delete(rec, k)
		}
	}
	if !found {
		return 0, "", nil, false
	}
	delete(rec, "time")
	delete(rec, "@timestamp")
	keys := make([]string, 0, len(rec))
	for k := range rec {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	attrs := make([]any, 0, 2*len(keys))
	for _, k := range keys {
		key := k
		if key == "plugin" {
			key = "plugin_attr"
		}
		attrs = append(attrs, key, rec[k])
	}
	return lv, msg, attrs, true
}

// parseLogfmtLine reads a line of slog's TextHandler: key=value pairs,
// values bare or Go-quoted, with at least a level and a msg.
func parseLogfmtLine(line []byte) (slog.Level, string, []any, bool) {
	s := string(line)
	lv, msg := slog.LevelInfo, ""
	var haveLevel, haveMsg bool
	var attrs []any
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 || strings.ContainsAny(s[:eq], " \"") {
			return 0, "", nil, false
		}
		key := s[:eq]
		s = s[eq+1:]
		var val string
		if strings.HasPrefix(s, `"`) {
			q, err := strconv.QuotedPrefix(s)
			if err != nil {
				return 0, "", nil, false
			}
			val, _ = strconv.Unquote(q)
			s = s[len(q):]
		} else {
			end := strings.IndexByte(s, ' ')
			if end < 0 {
				end = len(s)
			}
			val = s[:end]
			s = s[end:]
		}
		if s != "" {
			if s[0] != ' ' {
				return 0, "", nil, false
			}
			s = strings.TrimLeft(s, " ")
		}
		switch key {
		case "time":
		case "level":
			l, ok := parseLevel(val)
			if !ok {
				return 0, "", nil, false
			}
			lv, haveLevel = l, true
		case "msg":
			msg, haveMsg = val, true
		case "plugin":
			attrs = append(attrs, "plugin_attr", val)
		default:
			attrs = append(attrs, key, val)
		}
	}
	if !haveLevel || !haveMsg {
		return 0, "", nil, false
	}
	return lv, msg, attrs, true
}
