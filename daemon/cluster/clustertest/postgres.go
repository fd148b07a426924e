package clustertest

import "github.com/qqchat/qq/plugins/postgres/pgtest"

// StartPostgres starts a PostgreSQL server of its own with its data in
// dir (initdb on first use), with the binaries pgtest finds (Debian's
// postgresql-15).
func StartPostgres(dir string) (Postgres, error) {
	s, err := pgtest.Start(dir)
	if err != nil {
		return nil, err
	}
	return s, nil
}

var _ Postgres = (*pgtest.Server)(nil)
