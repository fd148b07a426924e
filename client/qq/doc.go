// Command qq is the chat client for people, built on package client: an
// interactive chat (the default, "qq" or "qq chat") and one-shot commands
// for scripts (register, send, users, offline, history, and for qqd's
// friends extension friends, add, accept, decline, cancel, remove, block,
// unblock, blocks). "qq -h" prints the commands, flags and exit codes.
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
//   - The chat shows pending messages at login (fetched with offline, page
//     by page), then pushes as they arrive, each once per msg_id, as
//     "[15:04] alice: text" above the input line; every message shown is
//     acked. Bodies are printed with control characters escaped so that a
//     message cannot drive the terminal. A kick ends the chat with exit 5.
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
//   - Commands of the friends, presence and typing extensions check the
//     server's hello first; without the feature they fail as the server
//     would (unknown_type, exit 4).
//   - All logic lives behind app.run, which takes its arguments,
//     environment, standard streams and password reader from its app, so
//     that tests run it in-process.
package main
