// Package adminserver serves qqd's admin API (see package admin) on a
// unix socket: permissions, routing, validation, logging and the
// qqd_admin_requests_total metric.
//
// The transport is separate from the data: a Backend supplies every
// answer, in package admin's types and errors. qqd implements it by
// adapting the daemon, its plugins and reload to them (daemon/qqd), so
// this package depends on neither.
//
// Who may call: the kernel reports each connection's peer (SO_PEERCRED).
// Root, qqd's own user and members of Options.Group may call everything;
// members of Options.ReadOnlyGroup may call the read endpoints only;
// everyone else gets 403. Mutating calls are logged with the caller's uid,
// gid and pid.
package adminserver
