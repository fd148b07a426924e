package plugins

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strings"
)

// DecodeConfig decodes a plugin's JSON configuration (what a factory
// receives; empty means {}) into v, a pointer to the defaults (keys the
// config leaves out keep them), strictly:
// every object key must match a json tag exactly. It returns every problem
// it finds — each unknown key with its path (e.g. "lists[1].acton:
// unknown key"), and a decoding error such as a value of the wrong type —
// so that a factory can report them all at once. ok is false when config
// is not one JSON value at all, so that there is nothing to validate.
func DecodeConfig(config []byte, v any) (errs []error, ok bool) {
	if len(bytes.TrimSpace(config)) == 0 {
		config = []byte("{}")
	}
	errs = unknownKeys(config, reflect.TypeOf(v), "")
	defaults := reflect.New(reflect.TypeOf(v).Elem()).Elem()
	defaults.Set(reflect.ValueOf(v).Elem())
	err := decode(config, v, true)
	if err != nil && len(errs) > 0 && strings.HasPrefix(err.Error(), "json: unknown field") {
		// The unknown keys are reported, with their paths, by unknownKeys.
		// The decoder stops recording errors at the first one: decode again
		// leniently for the others (such as a value of the wrong type),
		// from the defaults (a factory's checks of the values must not
		// see keys that were never given as empty).
		reflect.ValueOf(v).Elem().Set(defaults)
		err = decode(config, v, false)
	}
	var syn *json.SyntaxError
	switch {
	case err == nil:
	case errors.As(err, &syn) || errors.Is(err, io.ErrUnexpectedEOF):
		return []error{fmt.Errorf("config: %w", err)}, false
	default:
		errs = append(errs, fmt.Errorf("config: %w", err))
	}
	return errs, true
}

// decode decodes the single JSON value in data into v.
func decode(data []byte, v any, strict bool) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("unexpected data after the configuration object")
	}
	return nil
}

// unknownKeys returns an error for every object key in data that has no
// field in type t, recursing into nested objects and arrays. Keys must
// match the json tags exactly (encoding/json alone would also accept other
// letter cases). Values of the wrong shape are left to the decoder.
func unknownKeys(data []byte, t reflect.Type, path string) []error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var errs []error
	switch t.Kind() {
	case reflect.Struct:
		var obj map[string]json.RawMessage
		if json.Unmarshal(data, &obj) != nil {
			return nil
		}
		fields := make(map[string]reflect.Type, t.NumField())
		for f := range t.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			fields[name] = f.Type
		}
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			key := k
			if path != "" {
				key = path + "." + k
			}
			ft, ok := fields[k]
			if !ok {
				errs = append(errs, fmt.Errorf("%s: unknown key", key))
				continue
			}
			errs = append(errs, unknownKeys(obj[k], ft, key)...)
		}
	case reflect.Slice, reflect.Array:
		var arr []json.RawMessage
		if json.Unmarshal(data, &arr) != nil {
			return nil
		}
		for i, e := range arr {
			errs = append(errs, unknownKeys(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i))...)
		}
	}
	return errs
}
