// Package plugins is the contract between qqd and its plugins: the Storage
// interface that keeps users, history and pending messages, its optional
// Social part that keeps friendships, friend requests and blocks (found
// with SocialOf), its optional Groups part that keeps groups, their
// logs and their members' read cursors (found with GroupsOf) and its
// optional Tokens part that keeps resume tokens (found with TokensOf),
// its optional Backup part that copies the store while it serves (found
// with BackupOf), its optional Stats part that reports statistics of its
// own state for qqd's /metrics (found with StatsOf),
// the Filter interface that inspects messages before they are stored, and the go-plugin wiring that runs them out of process
// (Start, Supervisor, ServeStorage, ServeFilter). docs/plugins.md is the
// author's guide; the package examples, a filter plugin and a storage
// plugin, are the place to start, and package storagetest checks a
// storage against the contract.
//
// The Storage interface is shaped to cross a process boundary: writes come
// in batches (many messages and many acks in one call, one durable commit),
// every call takes a context whose deadline bounds it, and a failed write
// says whether anything may have been stored.
//
// # Plugin processes
//
// A plugin is a program whose main is one line:
//
//	func main() { plugins.ServeFilter(myfilter.New) }   // or ServeStorage
//
// qqd starts it with Start (built-in plugins are qqd itself, run as
// "qqd plugin <name>"), using hashicorp/go-plugin: a handshake on the
// child's stdout (Handshake, VersionedPlugins, ProtocolVersion), then gRPC
// over a Unix socket with automatic mutual TLS. The services are defined
// in pluginpb/qqplugin.proto; plugin authors only see the Go interfaces
// of this package. The first call is Configure, which runs the plugin's
// factory with its JSON configuration and Env; the factory's error text
// reaches qqd's error message. Calls before a successful Configure fail.
//
// Across the boundary the contract holds: ErrUserExists, ErrUnknownUser,
// ErrBadCursor, ErrBlocked, ErrNotFriends, ErrNoRequest and the group
// errors (ErrNoGroup, ErrNotMember, ErrNotAllowed, ErrMuted, ErrGroupFull,
// ErrAlreadyMember, ErrGroupLimit), the token errors (ErrNoToken,
// ErrTokenExists), and context.Canceled and
// context.DeadlineExceeded, still satisfy errors.Is on the host,
// AppendResult.Err too; a Write fails with a *WriteError whose
// MaybeWritten is the plugin's, or true when the call failed in transport
// (the process died or the deadline expired mid-call), or false when it was
// never sent.
//
// A plugin logs with log/slog to os.Stderr (stdout belongs to the
// handshake). qqd relays each line to the Spec's Logger with
// plugin=<instance name>, keeping the level of slog's text and JSON
// formats. A plugin never outlives qqd: it exits when its parent process
// changes (checked every 500ms), and on Linux the kernel also SIGKILLs it
// (Pdeathsig). It ignores SIGINT and SIGTERM, so that qqd can make its
// last writes before it stops its plugins with Process.Kill or
// CleanupClients.
//
// # Protocol versions
//
// Host and plugin negotiate the plugin protocol version in the handshake.
// The host speaks versions 1 to 5 (VersionedPlugins), and a plugin
// built with this package serves all five, so a plugin built before
// version 2, 3, 4 or 5 starts under this host, and one built now under a host
// that knows only 1; the newest version both know is used. Version 2 adds Social to the storage
// service (and the Write checks that go with it, NewMessage.FriendsOnly);
// for filters the two versions are the same. A storage in a plugin process
// has Social only when version 2 was negotiated and the plugin's storage
// implements it (it says so when configured): SocialOf answers that, per
// process (Process.ProtocolVersion), and through a Supervisor for the
// process currently in service, which can change at a restart. Groups
// came later within version 2, as compatible additions to the same
// service; GroupsOf answers the same way, from what the plugin said when
// configured (a version 2 plugin built before groups says nothing, and
// has none), and so does TokensOf for resume tokens, added the same way
// after groups. Version 3 changes only how the calls travel: with a plugin
// that negotiated it, Filter, Write and LookupCIDs go over one long-lived
// gRPC stream per process (calls.go) rather than as one unary call each,
// with the same answers, errors, deadlines, cancellation and Write order.
// Version 4 adds Backup to the storage service: BackupOf answers as
// SocialOf does, from the negotiated version (4 or later) and what the
// plugin said when configured.
//
// Version 5 adds Stats to the storage service: StatsOf answers the same
// way, from the negotiated version (5 or later) and what the plugin said
// when configured.
//
// # Supervision
//
// A Supervisor keeps one plugin process running: when the process exits,
// or HangLimit calls in a row run into their deadline, it kills it and
// starts a new one after a backoff (doubling from BackoffMin to
// BackoffMax). Calls made meanwhile fail at once with ErrPluginDown.
//
// # Overlapping writes
//
// The storage client numbers its Writes and the plugin side applies them
// in that order (WriteOverlapper), so the host can send the next batch
// while the previous one commits.
package plugins
