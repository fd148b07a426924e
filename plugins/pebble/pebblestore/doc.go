// Package pebblestore is an implementation of [plugins.Storage] on a
// Pebble database (github.com/cockroachdb/pebble/v2, an LSM key-value
// store; no cgo), with [plugins.Social] and [plugins.Tokens]. The
// requirements on every storage plugin are in docs/plugins.md ("Writing a
// storage plugin"); package sqlitestore is the reference implementation.
package pebblestore
