// Package plugins is the contract between qqd and its plugins: the Storage
// interface that keeps users, history and pending messages, and (with the
// plugin issue) the Filter interface and the go-plugin wiring that runs both
// out of process.
//
// The Storage interface is shaped to cross a process boundary: writes come
// in batches (many messages and many acks in one call, one durable commit),
// every call takes a context whose deadline bounds it, and a failed write
// says whether anything may have been stored.
package plugins
