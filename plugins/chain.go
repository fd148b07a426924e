package plugins

import (
	"fmt"
	"time"
)

// FailurePolicy says what happens to messages when a filter fails (errors,
// times out, crashes, or answers nonsense). Its text form, used in qq.yaml
// (on_failure), logs and metrics, is "reject" or "allow".
type FailurePolicy uint8

// Failure policies.
const (
	// FailClosed refuses the messages: their senders get unavailable and
	// nothing is stored. It is the zero value and qq.yaml's default.
	FailClosed FailurePolicy = iota
	// FailOpen passes the messages on as if the filter had allowed them.
	FailOpen
)

var failurePolicyNames = [...]string{FailClosed: "reject", FailOpen: "allow"}

// String returns "reject" or "allow".
func (p FailurePolicy) String() string {
	if int(p) < len(failurePolicyNames) {
		return failurePolicyNames[p]
	}
	return fmt.Sprintf("FailurePolicy(%d)", uint8(p))
}

// Valid reports whether p is one of the policies.
func (p FailurePolicy) Valid() bool { return int(p) < len(failurePolicyNames) }

// MarshalText returns the policy's name.
func (p FailurePolicy) MarshalText() ([]byte, error) {
	if !p.Valid() {
		return nil, fmt.Errorf("failure policy: invalid value %d", uint8(p))
	}
	return []byte(p.String()), nil
}

// UnmarshalText parses "reject" or "allow".
func (p *FailurePolicy) UnmarshalText(b []byte) error {
	for i, n := range failurePolicyNames {
		if string(b) == n {
			*p = FailurePolicy(i)
			return nil
		}
	}
	return fmt.Errorf("must be one of reject, allow (got %q)", b)
}

// FilterLink is one link of the host's filter chain: a Filter with the
// name it is known by in logs, metrics and reject reasons, what happens
// when it fails, and the deadline of one call.
type FilterLink struct {
	// Name identifies the instance in logs and error messages.
	Name   string
	Filter Filter
	// OnFailure applies when a call errors, times out or returns a
	// wrong number of verdicts, an unknown action, or an invalid rewrite.
	OnFailure FailurePolicy
	// Timeout bounds one call (0: the host's storage timeout).
	Timeout time.Duration
}
