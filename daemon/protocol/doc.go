// Package protocol is the QQP/1 wire contract shared by qqd and its clients:
// frame reading with a hard length bound, request decoding with the
// contract's error precedence, and allocation-light encoding of replies and
// pushes.
//
// The package imports only the standard library so that any Go client can use
// it without pulling in the server. The contract, and qqd's readings of it
// where the contract leaves room, are documented in docs/protocol.md.
package protocol
