package config

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/structs"
	"github.com/knadh/koanf/v2"
)

// envPrefix is the prefix of the environment variables Load reads.
const envPrefix = "QQD_"

// Options says where Load reads from. The zero value means defaults only.
type Options struct {
	// File is a YAML file; "" means none. A named file that is missing is
	// an error.
	File string
	// Env holds "KEY=value" pairs (qqd passes os.Environ()); only QQD_*
	// variables are used, see the package documentation for their names.
	Env []string
	// Overrides maps dotted keys to values, e.g. {"listen": "127.0.0.1:0"};
	// applied last. Values may be strings (parsed like environment values)
	// or values of the field's type.
	Overrides map[string]any
}

// Load builds a Config from the defaults, then opts.File, then the QQD_*
// variables in opts.Env, then opts.Overrides, each layer overriding the
// ones before it, and validates it. A key given an empty (null) value keeps
// the value of the layers below it.
// After decoding it fills each filter entry's empty name, on_failure and
// zero timeout with their defaults (see the package documentation).
//
// On failure Load returns a nil Config and an error joining every problem
// found: unknown keys, values of the wrong type and invalid values, each
// naming its key and, where known, the layer that set it.
func Load(opts Options) (*Config, error) {
	l := loader{
		k:      koanf.New("."),
		user:   koanf.New("."),
		known:  make(map[string]bool),
		groups: make(map[string]bool),
		lists:  make(map[string]bool),
		opaque: make(map[string]bool),
		source: make(map[string]string),
	}
	shapeKeys("", reflect.TypeFor[Config](), l.lists, l.opaque)

	// Layer 1: defaults. They also define the set of valid keys.
	defaults := koanf.New(".")
	if err := defaults.Load(structs.Provider(Default(), "koanf"), nil); err != nil {
		return nil, fmt.Errorf("config: defaults: %w", err)
	}
	for _, key := range defaults.Keys() {
		l.known[key] = true
		for i, c := range key {
			if c == '.' {
				l.groups[key[:i]] = true
			}
		}
	}
	if err := l.k.Merge(defaults); err != nil {
		return nil, fmt.Errorf("config: defaults: %w", err)
	}

	// Layer 2: the YAML file.
	if opts.File != "" {
		layer := koanf.New(".")
		if err := layer.Load(file.Provider(opts.File), yaml.Parser()); err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) && pe.Path == opts.File {
				err = pe.Err // "config: x.yaml: no such file or directory"
			}
			return nil, fmt.Errorf("config: %s: %w", opts.File, err)
		}
		if err := l.merge(layer, func(string) string { return opts.File }, false); err != nil {
			return nil, err
		}
	}

	// Layer 3: QQD_* environment variables.
	if len(opts.Env) > 0 {
		names := make(map[string]string) // key -> variable name
		layer := koanf.New(".")
		err := layer.Load(env.Provider(".", env.Opt{
			Prefix: envPrefix,
			TransformFunc: func(name, value string) (string, any) {
				key := envKey(name)
				if key != "" {
					names[key] = name
				}
				return key, value
			},
			EnvironFunc: func() []string { return opts.Env },
		}), nil)
		if err != nil {
			return nil, fmt.Errorf("config: env: %w", err)
		}
		if err := l.merge(layer, func(key string) string { return "env " + names[key] }, true); err != nil {
			return nil, err
		}
	}

	// Layer 4: overrides (command-line flags).
	if len(opts.Overrides) > 0 {
		layer := koanf.New(".")
		if err := layer.Load(confmap.Provider(opts.Overrides, "."), nil); err != nil {
			return nil, fmt.Errorf("config: overrides: %w", err)
		}
		if err := l.merge(layer, func(string) string { return "overrides" }, false); err != nil {
			return nil, err
		}
	}

	// Decode onto the defaults: a key whose value cannot be decoded keeps
	// its default, so that checks relating it to other keys stay meaningful.
	// Lists and plugin configs are the exception: the merged value already
	// holds everything from the defaults, and mapstructure would decode it
	// into the default slice's elements and the default map, mixing them.
	cfg := Default()
	cfg.Filters = nil
	cfg.Storage.Config = nil
	bad := make(map[string]bool)
	err := l.k.UnmarshalWithConf("", cfg, koanf.UnmarshalConf{
		Tag: "koanf",
		DecoderConfig: &mapstructure.DecoderConfig{
			ErrorUnused:      true,
			WeaklyTypedInput: true,
			TagName:          "koanf",
			DecodeHook: mapstructure.ComposeDecodeHookFunc(
				shapeHook,
				durationHook,
				textHook,
				wholeNumberHook,
			),
		},
	})
	if err != nil {
		var decodeErrs []error
		for _, e := range leafErrors(err) {
			var de *mapstructure.DecodeError
			if errors.As(e, &de) && de.Name() != "" {
				name, msg := de.Name(), describe(de.Unwrap())
				if l.groups[name] && !strings.HasPrefix(msg, "expected a mapping of keys") {
					msg = "expected a mapping of keys, got " + valueName(l.k.Get(name))
				}
				bad[name] = true
				decodeErrs = append(decodeErrs, fmt.Errorf("config: %s%s: %s", l.sourcePrefix(name), name, msg))
				continue
			}
			decodeErrs = append(decodeErrs, fmt.Errorf("config: %w", e))
		}
		slices.SortStableFunc(decodeErrs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
		l.errs = append(l.errs, decodeErrs...)
	}

	// A command plugin's label defaults to its program's name, not to the
	// default plugin's.
	if _, set := l.source["storage.plugin"]; len(cfg.Storage.Command) > 0 && !set {
		cfg.Storage.Plugin = ""
	}
	// The default storage.config is the default plugin's: the other
	// built-in gets its own defaults under the keys the user layers set, a
	// command plugin only the keys set.
	_, cfg.Storage.chosen = l.source["storage.plugin"]
	if len(cfg.Storage.Command) > 0 || cfg.Storage.Plugin != defaultStoragePlugin {
		user, _ := l.user.Get("storage.config").(map[string]any)
		cfg.Storage.Config = user
		if defaults := StorageDefaults(cfg.Storage.Plugin); defaults != nil && len(cfg.Storage.Command) == 0 {
			merged := koanf.New(".")
			if err := merged.Load(confmap.Provider(defaults, ""), nil); err != nil {
				return nil, fmt.Errorf("config: storage.config defaults: %w", err)
			}
			if err := merged.Load(confmap.Provider(user, ""), nil); err != nil {
				return nil, fmt.Errorf("config: storage.config: %w", err)
			}
			cfg.Storage.Config = merged.Raw()
		}
	}
	cfg.applyDefaults()

	for _, p := range cfg.problems() {
		if underBad(bad, p.key) {
			continue // already reported as undecodable
		}
		l.errs = append(l.errs, fmt.Errorf("config: %s%s: %s", l.sourcePrefix(p.key), p.key, p.msg))
	}

	if err := errors.Join(l.errs...); err != nil {
		return nil, err
	}
	return cfg, nil
}

// envKey returns the config key an environment variable name configures,
// or "" if the name lacks the QQD_ prefix: the prefix is dropped, the rest
// lower-cased and "__" turned into ".", so QQD_LIMITS__MAX_FRAME_BYTES
// configures limits.max_frame_bytes.
func envKey(name string) string {
	rest, ok := strings.CutPrefix(name, envPrefix)
	if !ok {
		return ""
	}
	return strings.ReplaceAll(strings.ToLower(rest), "__", ".")
}

// loader holds the state of one Load call.
type loader struct {
	k      *koanf.Koanf      // all layers merged
	user   *koanf.Koanf      // the layers above the defaults merged
	known  map[string]bool   // valid leaf keys, e.g. "limits.max_frame_bytes"
	groups map[string]bool   // keys of sections, e.g. "limits", "storage.config"
	lists  map[string]bool   // keys of lists, e.g. "filters", "storage.command"
	opaque map[string]bool   // keys of plugin configs taking any keys: "storage.config"
	source map[string]string // key -> label of the last layer that set it
	errs   []error
}

// filterKeys are the valid keys of a filters entry.
var filterKeys = func() map[string]bool {
	keys := make(map[string]bool)
	for f := range reflect.TypeFor[Filter]().Fields() {
		keys[f.Tag.Get("koanf")] = true
	}
	return keys
}()

// shapeKeys records the keys of the list and map fields of struct type t.
func shapeKeys(prefix string, t reflect.Type, lists, opaque map[string]bool) {
	for f := range t.Fields() {
		key := prefix + f.Tag.Get("koanf")
		switch f.Type.Kind() {
		case reflect.Struct:
			shapeKeys(key+".", f.Type, lists, opaque)
		case reflect.Slice:
			lists[key] = true
		case reflect.Map:
			opaque[key] = true
		}
	}
}

// merge checks a layer's keys, records unknown ones as errors (and drops
// them), drops keys given a null value (so that they keep the value of the
// layers below), checks the entries of a filters list, remembers which
// layer set each key and merges the layer. fromEnv says the layer holds
// environment variables, which cannot set lists.
func (l *loader) merge(layer *koanf.Koanf, label func(key string) string, fromEnv bool) error {
	for _, key := range layer.Keys() { // sorted
		if list := l.listOf(key); fromEnv && list != "" {
			l.errs = append(l.errs, fmt.Errorf(
				"config: %s: %s cannot be set from the environment (it is a list); set it in the configuration file",
				label(key), list))
			layer.Delete(key)
			continue
		}
		if !l.known[key] && !l.groups[key] && !l.underLeaf(key) && !l.inOpaque(key) {
			l.errs = append(l.errs, fmt.Errorf("config: %s: unknown key %q", label(key), key))
			layer.Delete(key)
			continue
		}
		if layer.Get(key) == nil {
			layer.Delete(key)
			continue
		}
		if key == "filters" {
			if err := l.checkFilters(layer, label(key)); err != nil {
				return err
			}
		}
		// Sections given a scalar ("limits: 5") and leaves given a mapping
		// ("listen: {a: 1}") are kept: decoding reports them as type errors.
		l.source[key] = label(key)
	}
	if err := l.k.Merge(layer); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := l.user.Merge(layer); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// checkFilters records the unknown keys of the entries of the layer's
// filters list as errors, naming them by index ("filters[1].on_falure"),
// and drops them. Entries that are not mappings are left to decoding.
func (l *loader) checkFilters(layer *koanf.Koanf, label string) error {
	list, ok := normalize(layer.Get("filters")).([]any)
	if !ok {
		return nil
	}
	for i, entry := range list {
		m, ok := entry.(map[string]any)
		if !ok {
			continue
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if !filterKeys[k] {
				l.errs = append(l.errs, fmt.Errorf("config: %s: unknown key %q", label, fmt.Sprintf("filters[%d].%s", i, k)))
				delete(m, k)
			}
		}
	}
	if err := layer.Set("filters", list); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// listOf returns the list key that key is or lies below, or "".
func (l *loader) listOf(key string) string {
	for list := range l.lists {
		if key == list || strings.HasPrefix(key, list+".") {
			return list
		}
	}
	return ""
}

// inOpaque reports whether key is a plugin config or lies below one.
func (l *loader) inOpaque(key string) bool {
	for o := range l.opaque {
		if key == o || strings.HasPrefix(key, o+".") {
			return true
		}
	}
	return false
}

// underBad reports whether key is, or lies below, a key that failed to
// decode.
func underBad(bad map[string]bool, key string) bool {
	for b := range bad {
		if key == b || strings.HasPrefix(key, b+".") || strings.HasPrefix(key, b+"[") {
			return true
		}
	}
	return false
}

// underLeaf reports whether a proper prefix of key is a leaf key, i.e. the
// leaf was given a mapping.
func (l *loader) underLeaf(key string) bool {
	for i := len(key) - 1; i > 0; i-- {
		if key[i] == '.' && l.known[key[:i]] {
			return true
		}
	}
	return false
}

// sourcePrefix returns "<layer>: " for the layer that set key (or a key
// below it), or "" if the value is a default. A key inside a list
// ("filters[1].name") is attributed to the layer that set the list.
func (l *loader) sourcePrefix(key string) string {
	if i := strings.IndexByte(key, '['); i >= 0 {
		key = key[:i]
	}
	if s, ok := l.source[key]; ok {
		return s + ": "
	}
	var below []string
	for k := range l.source {
		if strings.HasPrefix(k, key+".") {
			below = append(below, k)
		}
	}
	if len(below) == 0 {
		return ""
	}
	slices.Sort(below)
	return l.source[below[0]] + ": "
}

var durationType = reflect.TypeFor[time.Duration]()

// shapeHook rejects a scalar or mapping given for a list, and a list given
// for a mapping, which mapstructure's weak typing would otherwise convert
// (a string becoming a one-element command, a mapping a one-entry filters
// list).
func shapeHook(from, to reflect.Type, data any) (any, error) {
	isList := from.Kind() == reflect.Slice || from.Kind() == reflect.Array
	isMapping := from.Kind() == reflect.Map || from.Kind() == reflect.Struct
	switch to.Kind() {
	case reflect.Slice:
		if !isList {
			return nil, fmt.Errorf("expected a list, got %s", valueName(data))
		}
	case reflect.Map, reflect.Struct:
		if !isMapping {
			return nil, fmt.Errorf("expected a mapping of keys, got %s", valueName(data))
		}
	}
	return data, nil
}

// durationHook decodes durations from Go syntax strings ("10s", "5m").
// Bare numbers other than 0 are rejected rather than read as nanoseconds.
func durationHook(from, to reflect.Type, data any) (any, error) {
	if to != durationType || from == durationType {
		return data, nil
	}
	switch from.Kind() {
	case reflect.String:
		s := strings.TrimSpace(data.(string))
		d, err := time.ParseDuration(s)
		if err != nil {
			if _, numErr := strconv.ParseFloat(s, 64); numErr == nil {
				return nil, fmt.Errorf("invalid duration %q: missing unit, use Go syntax such as \"10s\"", data)
			}
			return nil, fmt.Errorf("invalid duration %q: use Go syntax such as \"500ms\", \"10s\", \"5m\", \"24h\"", data)
		}
		return d, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		if reflect.ValueOf(data).IsZero() {
			return time.Duration(0), nil
		}
		return nil, fmt.Errorf("invalid duration %v: missing unit, use Go syntax such as \"10s\"", data)
	}
	return data, nil
}

// wholeNumberHook rejects fractional numbers for integer keys, which would
// otherwise be truncated silently.
func wholeNumberHook(from, to reflect.Type, data any) (any, error) {
	if to.Kind() != reflect.Int || (from.Kind() != reflect.Float64 && from.Kind() != reflect.Float32) {
		return data, nil
	}
	f := reflect.ValueOf(data).Float()
	if f != math.Trunc(f) || math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, fmt.Errorf("invalid value %v: expected an integer", data)
	}
	if f < math.MinInt || f >= math.MaxInt {
		return nil, fmt.Errorf("invalid value %v: out of range for an integer", data)
	}
	return data, nil
}

// leafErrors flattens wrapped and joined errors into their leaves, keeping
// *mapstructure.DecodeError values whole.
func leafErrors(err error) []error {
	switch e := err.(type) {
	case *mapstructure.DecodeError:
		return []error{err}
	case interface{ Unwrap() []error }:
		var out []error
		for _, inner := range e.Unwrap() {
			out = append(out, leafErrors(inner)...)
		}
		return out
	case interface{ Unwrap() error }:
		if inner := e.Unwrap(); inner != nil {
			return leafErrors(inner)
		}
	}
	return []error{err}
}

// describe turns a mapstructure error into an operator-facing message.
func describe(err error) string {
	var pe *mapstructure.ParseError
	if errors.As(err, &pe) {
		if errors.Is(pe.Err, strconv.ErrRange) {
			return fmt.Sprintf("invalid value %q: out of range for %s", fmt.Sprint(pe.Value), typeName(pe.Expected.Type()))
		}
		return fmt.Sprintf("invalid value %q: expected %s", fmt.Sprint(pe.Value), typeName(pe.Expected.Type()))
	}
	var ue *mapstructure.UnconvertibleTypeError
	if errors.As(err, &ue) {
		return fmt.Sprintf("expected %s, got %s", typeName(ue.Expected.Type()), valueName(ue.Value))
	}
	return err.Error()
}

func typeName(t reflect.Type) string {
	if t == durationType {
		return `a duration such as "10s"`
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean (true or false)"
	case reflect.Slice:
		return "a list"
	case reflect.Struct, reflect.Map:
		return "a mapping of keys"
	}
	return t.String()
}

func valueName(v any) string {
	if v == nil {
		return "nothing"
	}
	switch reflect.TypeOf(v).Kind() {
	case reflect.Map:
		return "a mapping"
	case reflect.Slice, reflect.Array:
		return "a list"
	}
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%v", v)
}
