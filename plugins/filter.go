package plugins

import "context"

// FilterMessage is a message as a filter sees it: after the filters before
// it in the chain, before storage.
type FilterMessage struct {
	From string
	// To is the recipient of a direct message; "" for a group message.
	To string
	// Group is the group of a group message (its id); 0 for a direct
	// message.
	Group int64
	Body  string
	// TS is the server's clock when the message entered the chain, in
	// unix milliseconds. Filters that count over time windows use it
	// rather than their own clock, so that tests and replays are exact.
	TS int64
}

// Action is what a filter decides for one message.
type Action uint8

// Filter actions.
const (
	// Allow passes the message on unchanged.
	Allow Action = iota
	// Rewrite passes the message on with Verdict.Body as its body.
	Rewrite
	// Reject refuses the message: the sender gets error "rejected" with
	// Verdict.Reason as its message, and nothing is stored.
	Reject
)

func (a Action) String() string {
	switch a {
	case Allow:
		return "allow"
	case Rewrite:
		return "rewrite"
	case Reject:
		return "reject"
	}
	return "unknown"
}

// Verdict is a filter's decision for one message.
type Verdict struct {
	Action Action
	// Body is the new body, with Rewrite: non-empty valid UTF-8 (the host
	// enforces max_body_bytes on it too).
	Body string
	// Reason is shown to the sender, with Reject: one short line of human
	// text, no secrets.
	Reason string
}

// Filter inspects messages before they are stored. Filters run in a chain
// in the configured order; a rewrite by one is what the next sees.
//
// Filter receives a batch (the messages accepted while the previous call
// ran) and returns one verdict per message, at the same index. An error
// fails the whole batch; the host then applies the filter's on_failure
// policy (reject or allow) to every message of it. Implementations are
// called from one goroutine at a time per process, but must not rely on
// it, and must honour ctx's deadline.
type Filter interface {
	Filter(ctx context.Context, msgs []FilterMessage) ([]Verdict, error)
}

// FilterFactory makes a Filter from its configuration: the plugin's
// "config" section of qq.yaml, as JSON (an empty object when absent). It
// must validate the configuration and report every problem.
type FilterFactory func(env Env, config []byte) (Filter, error)

// StorageFactory makes a Storage from its configuration, like
// FilterFactory.
type StorageFactory func(env Env, config []byte) (Storage, error)

// Env is what the host tells every plugin about its surroundings.
type Env struct {
	// DataDir is qqd's data directory (absolute). Relative paths in a
	// plugin's configuration are taken relative to it.
	DataDir string
}
