package storagedump

import "context"

// Exporter is a storage that can write out everything it keeps, as the
// records of a dump in the order the package comment gives, Header first
// and Trailer last. It reads one consistent view (a transaction or a
// snapshot), so it may run while the store serves, though the tools run
// it on a store no daemon has open. emit may keep the records it is
// given (Copy hands them to another goroutine): Export allocates each
// record anew and does not change it after emitting it. An error from
// emit ends the export with that error.
type Exporter interface {
	Export(ctx context.Context, emit func(*Record) error) error
}

// Importer is a storage that can load a dump. Import reads records from
// next until next returns the Trailer (then it commits and returns) or an
// error (then it returns that error, wrapped). It refuses a store that
// already holds anything. It may commit in chunks: a failed import leaves
// a store to throw away, which is why the tools import only into a store
// they created and remove it on failure. Records arrive in dump order and
// already checked by the caller (Header format, order, Trailer counts), so
// an Importer checks only what needs its own state (a message's users
// exist, a group's counts match its members).
type Importer interface {
	Import(ctx context.Context, next func() (*Record, error)) error
}
