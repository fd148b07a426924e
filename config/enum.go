package config

import (
	"encoding"
	"fmt"
	"reflect"
	"strings"
)

// Registration says who may create accounts (key registration).
type Registration uint8

// Registration policies.
const (
	// RegistrationOpen: anyone may register (the default).
	RegistrationOpen Registration = iota
	// RegistrationClosed: register is refused; operators create accounts
	// with qqadmin.
	RegistrationClosed
)

var registrationNames = []string{RegistrationOpen: "open", RegistrationClosed: "closed"}

func (r Registration) String() string                { return enumString(registrationNames, r) }
func (r Registration) Valid() bool                   { return int(r) < len(registrationNames) }
func (r Registration) MarshalText() ([]byte, error)  { return enumMarshal(registrationNames, r) }
func (r *Registration) UnmarshalText(b []byte) error { return enumUnmarshal(registrationNames, r, b) }

// DirectMessages says who may send a user direct messages (key
// direct_messages).
type DirectMessages uint8

// Direct message policies.
const (
	// DirectMessagesAnyone: any user (the default, QQP/1's meaning).
	DirectMessagesAnyone DirectMessages = iota
	// DirectMessagesFriends: friends only; others get not_friends.
	DirectMessagesFriends
)

var directMessagesNames = []string{DirectMessagesAnyone: "anyone", DirectMessagesFriends: "friends"}

func (d DirectMessages) String() string               { return enumString(directMessagesNames, d) }
func (d DirectMessages) Valid() bool                  { return int(d) < len(directMessagesNames) }
func (d DirectMessages) MarshalText() ([]byte, error) { return enumMarshal(directMessagesNames, d) }
func (d *DirectMessages) UnmarshalText(b []byte) error {
	return enumUnmarshal(directMessagesNames, d, b)
}

// LogFormat is the format of qqd's log lines (key log.format).
type LogFormat uint8

// Log formats.
const (
	// LogText is logfmt-style key=value text (the default).
	LogText LogFormat = iota
	// LogJSON is one JSON object a line.
	LogJSON
)

var logFormatNames = []string{LogText: "text", LogJSON: "json"}

func (f LogFormat) String() string                { return enumString(logFormatNames, f) }
func (f LogFormat) Valid() bool                   { return int(f) < len(logFormatNames) }
func (f LogFormat) MarshalText() ([]byte, error)  { return enumMarshal(logFormatNames, f) }
func (f *LogFormat) UnmarshalText(b []byte) error { return enumUnmarshal(logFormatNames, f, b) }

func enumString[T ~uint8](names []string, v T) string {
	if int(v) < len(names) {
		return names[v]
	}
	return fmt.Sprintf("%s(%d)", reflect.TypeFor[T]().Name(), uint8(v))
}

func enumMarshal[T ~uint8](names []string, v T) ([]byte, error) {
	if int(v) >= len(names) {
		return nil, fmt.Errorf("%s: invalid value %d", reflect.TypeFor[T]().Name(), uint8(v))
	}
	return []byte(names[v]), nil
}

func enumUnmarshal[T ~uint8](names []string, v *T, b []byte) error {
	for i, n := range names {
		if string(b) == n {
			*v = T(i)
			return nil
		}
	}
	return fmt.Errorf("must be one of %s (got %q)", strings.Join(names, ", "), b)
}

var textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()

// textHook decodes the keys whose type parses itself from text (the
// enums: registration, log.format, filters[].on_failure) from a string
// only: a number would otherwise convert silently into an enum value.
func textHook(from, to reflect.Type, data any) (any, error) {
	if from == to || to == durationType || !reflect.PointerTo(to).Implements(textUnmarshalerType) {
		return data, nil
	}
	s, ok := data.(string)
	if !ok {
		return nil, fmt.Errorf("expected a string, got %s", valueName(data))
	}
	v := reflect.New(to)
	if err := v.Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(strings.TrimSpace(s))); err != nil {
		return nil, err
	}
	return v.Elem().Interface(), nil
}

// checkEnum adds a problem for an enum value out of range (only a Config
// built by hand can hold one).
func (v *validator) checkEnum(key string, e interface {
	Valid() bool
	String() string
}, names string) {
	if !e.Valid() {
		v.add(key, fmt.Sprintf("must be one of %s (got %s)", names, e))
	}
}
