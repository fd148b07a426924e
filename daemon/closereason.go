package daemon

import "github.com/qqchat/qq/daemon/protocol"

// CloseReason says why a connection closed. Its String form is a stable
// snake_case name used in logs, metric labels and admin output.
type CloseReason uint8

// Close reasons.
const (
	// CloseNone: the connection is still open.
	CloseNone CloseReason = iota
	// CloseClientQuit: the client closed its end (EOF).
	CloseClientQuit
	// CloseLogout: the client logged out.
	CloseLogout
	// CloseReadError: reading failed (reset, broken pipe).
	CloseReadError
	// CloseWriteError: writing failed for a reason other than a deadline.
	CloseWriteError
	// CloseFrameTooLarge: a frame exceeded max_frame_bytes.
	CloseFrameTooLarge
	// CloseSlowConsumer: unsent output passed outbound_queue_bytes.
	CloseSlowConsumer
	// CloseWriteTimeout: a write did not finish within write_timeout.
	CloseWriteTimeout
	// CloseIdle: a logged-in connection said nothing for idle_timeout.
	CloseIdle
	// CloseLoginTimeout: no successful login within login_timeout.
	CloseLoginTimeout
	// CloseKicked: an operator kicked the user.
	CloseKicked
	// CloseShutdown: the server is shutting down.
	CloseShutdown
	// CloseTooManyConnections: refused at accept, past
	// limits.max_connections or limits.max_connections_per_ip.
	CloseTooManyConnections
	// CloseFenced: this cluster node fenced itself (lost NATS or its
	// storage); the client gets kicked shutdown and reconnects elsewhere.
	CloseFenced
	numCloseReasons
)

var closeReasonNames = [numCloseReasons]string{
	CloseNone:          "none",
	CloseClientQuit:    "client_quit",
	CloseLogout:        "logout",
	CloseReadError:     "read_error",
	CloseWriteError:    "write_error",
	CloseFrameTooLarge: "frame_too_large",
	CloseSlowConsumer:  "slow_consumer",
	CloseWriteTimeout:  "write_timeout",
	CloseIdle:          "idle",
	CloseLoginTimeout:  "login_timeout",
	CloseKicked:        "kicked",
	CloseShutdown:      "shutdown",

	CloseTooManyConnections: "too_many_connections",
	CloseFenced:             "fenced",
}

// kickReasons ties the close reasons that tell the client why to the
// reason of their kicked push. The others close without one.
var kickReasons = [numCloseReasons]protocol.KickReason{
	CloseSlowConsumer:       protocol.KickSlowConsumer,
	CloseIdle:               protocol.KickIdle,
	CloseLoginTimeout:       protocol.KickIdle,
	CloseKicked:             protocol.KickAdmin,
	CloseShutdown:           protocol.KickShutdown,
	CloseTooManyConnections: protocol.KickTooManyConnections,
	CloseFenced:             protocol.KickShutdown,
}

// KickReason is the reason of the kicked push a connection closed for r
// gets, or "" when it gets none.
func (r CloseReason) KickReason() protocol.KickReason {
	if r < numCloseReasons {
		return kickReasons[r]
	}
	return ""
}

// kicked is the kicked push for a connection closed for r. Only reasons
// with a KickReason have one; asking for another is a programming error.
func (r CloseReason) kicked(message string) []byte { return r.kickedRetry(message, 0) }

// kickedRetry is kicked with a retry_after_ms hint (none when 0).
func (r CloseReason) kickedRetry(message string, retryAfterMS int64) []byte {
	kr := r.KickReason()
	if kr == "" {
		panic("daemon: no kicked push for close reason " + r.String())
	}
	return protocol.AppendKicked(nil, kr, message, retryAfterMS)
}

func (r CloseReason) String() string {
	if r < numCloseReasons {
		return closeReasonNames[r]
	}
	return "unknown"
}

// CloseReasons lists every reason a closed connection can have, for
// callers that pre-create metric series.
func CloseReasons() []CloseReason {
	rs := make([]CloseReason, 0, numCloseReasons-1)
	for r := CloseClientQuit; r < numCloseReasons; r++ {
		rs = append(rs, r)
	}
	return rs
}
