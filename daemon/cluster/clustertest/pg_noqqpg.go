//go:build !qqpg

package clustertest

// StartPostgres would start a PostgreSQL server in dir; this build has no
// PostgreSQL support (see pg_qqpg.go) and returns [ErrNoPostgres].
func StartPostgres(dir string) (Postgres, error) { return nil, ErrNoPostgres }
