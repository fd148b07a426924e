package plugins

import (
	"context"
	"errors"
)

// ErrBackupUnsupported is returned by a Backup obtained earlier (through a
// Supervisor) when the plugin process now running cannot make backups.
var ErrBackupUnsupported = errors.New("backup not supported by this storage plugin")

// Backup is the part of a Storage that copies the store while it serves
// (protocol version 4). A storage that implements it (sqlitestore and
// pebblestore do) can be backed up online, with `qqadmin backup`; find it
// with BackupOf, not with a type assertion.
type Backup interface {
	// Backup writes a consistent copy of everything the store keeps into
	// dir, which must be absolute and must not exist: Backup creates it
	// with mode 0700 (and its missing parents, 0700 too), and removes
	// what it created when it fails. The copy holds at least every Write
	// (and every other change) that returned before Backup was called,
	// and is as durable as the store's commits when Backup returns (its
	// files and directory are fsynced). The copy is a store of the same
	// plugin: point the plugin's path at it (with the plugin's files in
	// it under their usual names) to use it. Writes and reads go on while
	// Backup runs; it is safe for concurrent use with every other method
	// of the Storage, and the host runs one at a time.
	Backup(ctx context.Context, dir string) error
}

// BackupOf returns s's Backup, if it has one: for a storage in a plugin
// process, when the process negotiated protocol version 4 and the plugin
// said so at Configure (its storage implements Backup); for a storage in
// this process, when it implements Backup, or else when it is a wrapper
// with a method BackupSide() (Backup, bool) that reports it (the wrapper
// method of Social is named Social, but a method Backup() would clash
// with Backup's own).
func BackupOf(s Storage) (Backup, bool) {
	if w, ok := s.(interface{ BackupSide() (Backup, bool) }); ok {
		return w.BackupSide()
	}
	b, ok := s.(Backup)
	return b, ok
}
