// Command qq is the chat client for people, built on package client: an
// interactive chat (the default, "qq" or "qq chat") and one-shot commands
// for scripts (register, send, users, offline, history, and for qqd's
// friends extension friends, add, accept, decline, cancel, remove, block,
// unblock, blocks; for its groups extension groups and group-send). "qq -h"
// prints the commands, flags and exit codes.
//
// Contracts:
//
//   - Settings come from flags, else the environment: --addr / QQ_ADDR
//     (default 127.0.0.1:5190), --user / QQ_USER. The password comes from
//     QQ_PASSWORD, else it is asked for without echo on the terminal
//     (/dev/tty, or stdin when that is one); "register" asks twice.
//   - Exit codes: 0 ok, 1 usage error, 2 cannot connect, 3 auth failed or not
//     logged in, 4 the server refused the request (any other error reply),
//     5 anything else (connection lost, kicked, unexpected). Errors are
//     printed on stderr as one readable line.
//   - With --json a one-shot command prints exactly one JSON object on
//     stdout: its result (messages as an array of protocol.Message), or
//     {"error": {"code", "message", "exit"}} when it fails.
//   - The chat runs on a client.Session: it shows pending messages at
//     login (the session fetches them page by page), then pushes as they
//     arrive, each once per msg_id, as "[15:04] alice: text" above the
//     input line; every message shown is acked. Bodies are printed with
//     control characters escaped so that a message cannot drive the
//     terminal.
//   - When the connection is lost (qqd restarts, the network fails) the
//     chat shows why and "reconnecting…", and the prompt starts with
//     "(reconnecting…)" until it shows "reconnected"; the session then
//     catches up what arrived meanwhile (messages, and entries of the
//     user's groups), each shown once. A line typed while disconnected
//     (or whose send got no answer in 30 s) waits in the session's
//     outbox and is shown when it is stored: it is stored once. An
//     operator's kick ends the chat with exit 5; a login refused when
//     reconnecting (the password changed, the remembered login was
//     revoked) with exit 3. Messages still unsent when the chat ends are
//     listed.
//   - The session asks the server for a resume token (when its hello
//     lists "resume") and reconnects with it, so the password stays in
//     memory only as the fallback. With --remember (or QQ_REMEMBER=1) the
//     token is also written to a file of mode 0600 under the user's
//     configuration directory, qq/token-<server>-<user>; every chat
//     starts from that file when it exists, without the password (a
//     refused token is forgotten and the password asked for; a file that
//     others may read or write is refused). /quit then leaves without
//     logging out (a logout would revoke the token); /logout logs out and
//     deletes the file. Without a remembered login, /quit logs out.
//     One-shot commands always log in with the password.
//   - The chat's other pushes (friend requests and answers, presence,
//     notices) are one line each, printed the same way; a typing push
//     shows in the prompt ("(bob is typing…) to bob> ") until a stop, a
//     message from that user or their going offline. Every line and prompt
//     change goes through the line editor, which redraws the input line
//     below it, so a push never breaks what the user is typing.
//   - At a terminal the chat sends typing notifications for plain lines to
//     the current peer (start at the first character, repeated while the
//     line is edited, stop when it is sent or cleared), from a goroutine of
//     their own so that the line editor never waits for them.
//   - Group entries pushed to the chat are lines too ("[15:04] [#12 crew]
//     alice: hi", "[15:04] [#12 crew] bob joined"), of every group the user
//     is in; one that follows the read cursor the chat knows of is acked,
//     one after a gap (entries written while the user was away) is not,
//     so that the gap stays unread. /g <id> (or /to #<id>) makes plain
//     lines go to the group, with their @name words as mentions, and
//     first catches up from the cursor with group_sync, showing and
//     acking what it finds: /groups then counts what was not shown. The
//     chat's own group operations are shown as the entries they made.
//   - Commands of the friends, presence, typing and groups extensions
//     check the server's hello first; without the feature they fail as the
//     server would (unknown_type, exit 4).
//   - All logic lives behind app.run, which takes its arguments,
//     environment, standard streams and password reader from its app, so
//     that tests run it in-process.
package main
