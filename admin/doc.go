// Package admin is qqd's admin socket: HTTP and JSON over a unix socket,
// for operators and their tools (qqadmin, or curl --unix-socket).
//
// The transport is separate from the data: a Backend, which qqd implements
// by wiring the daemon, its plugins and reload together, supplies every
// answer, and this package adds permissions, routing, wire types, errors
// and the Client.
//
// Endpoints live under /v1/. The version changes only with incompatible
// changes; new fields and endpoints may appear within it.
//
//	GET    /v1/users                    online users and their sessions          read
//	GET    /v1/stats                    the server's counters                    read
//	GET    /v1/plugins                  plugin processes                         read
//	POST   /v1/kick                     {"user","reason"} → {"kicked":n}         write
//	POST   /v1/broadcast                {"text"} → {"sessions":n}                write
//	POST   /v1/reload                   → {"needs_restart":[...]}                write
//	POST   /v1/accounts                 {"user","password"} → {"user"}           write
//	DELETE /v1/accounts/{user}          → {"user","dropped_pending"}             write
//	PUT    /v1/accounts/{user}/password {"password"} → {"user"}                  write
//
// Every error is {"error":{"code":"...","message":"..."}} with a matching
// HTTP status; the codes are the Code* constants. A refused reload is 409
// reload_refused.
//
// Who may call: the kernel reports each connection's peer (SO_PEERCRED).
// Root, qqd's own user and members of Options.Group may call everything;
// members of Options.ReadOnlyGroup may call the read endpoints only;
// everyone else gets 403. Mutating calls are logged with the caller's uid,
// gid and pid.
package admin
