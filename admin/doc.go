// Package admin is the API of qqd's admin socket, HTTP and JSON over a
// unix socket for operators and their tools (qqadmin, or curl
// --unix-socket): its wire types, its errors and the Client.
//
// The package owns these types. The server, in admin/adminserver, asks a
// Backend for every answer and the Backend answers in admin's types and
// errors; qqd implements it by adapting the daemon, its plugins and reload
// to them. So neither this package nor qqadmin depends on the daemon, and
// a change inside the daemon changes no reply.
//
// Endpoints live under /v1/. The version changes only with incompatible
// changes; new fields and endpoints may appear within it.
//
//	GET    /v1/users                    online users and their sessions          read
//	GET    /v1/stats                    the server's counters                    read
//	GET    /v1/plugins                  plugin processes                         read
//	POST   /v1/kick                     {"user","reason","revoke"} → {"kicked":n,"revoked":n} write
//	POST   /v1/broadcast                {"text"} → {"sessions":n}                write
//	POST   /v1/reload                   → {"needs_restart":[...]}                write
//	POST   /v1/reload/check             → what a reload would do (dry run)       write
//	POST   /v1/accounts                 {"user","password"} → {"user"}           write
//	DELETE /v1/accounts/{user}          → {"user","dropped_pending"}             write
//	PUT    /v1/accounts/{user}/password {"password"} → {"user"}                  write
//	GET    /v1/groups?user=NAME         the live groups user belongs to          read
//	GET    /v1/groups/{id}              one group (a dissolved one too)          read
//	GET    /v1/groups/{id}/members      members by name, ?after=NAME&limit=N     read
//	DELETE /v1/groups/{id}              dissolve → {"group","seq","actor"}       write
//	DELETE /v1/groups/{id}/members/{user} remove a member → {"group","seq","actor"} write
//	GET    /v1/tokens?user=NAME         the user's resume tokens                 read
//	POST   /v1/tokens/revoke            {"user","ids"} → {"user","revoked":n}    write
//
// A kick with revoke revokes every resume token of the user before it
// kicks, so that no session comes back without the password; then a user
// who is not online is no error. POST /v1/tokens/revoke without ids
// revokes all of the user's tokens; sessions that logged in with them stay.
// A server that keeps no tokens answers 501 tokens_off, a kick with
// revoke too (and kicks no one).
//
// There is no listing of every group: the storage contract lists a
// user's groups, not all of them. The group changes are made in the name
// of the group's owner (the storage checks every change against its
// actor's rights, and an operator is no member), so the log's entry names
// the owner as its actor; the reply says whom.
//
// Every error is {"error":{"code":"...","message":"..."}} with a matching
// HTTP status; the codes are the Code* constants. A refused reload is 409
// reload_refused.
//
// Who may call: root, qqd's own user and members of the admin group may
// call everything; members of the read-only group may call the read
// endpoints only; everyone else gets 403 (see admin/adminserver).
package admin
