//go:build qqpg

package clustertest

import "github.com/qqchat/qq/plugins/postgres/pgtest"

// StartPostgres starts a PostgreSQL server of its own with its data in
// dir (initdb on first use), with the binaries pgtest finds.
//
// This file builds with the qqpg tag only, until plugins/postgres/pgtest
// is in the tree; then the tag (and pg_noqqpg.go) can go.
func StartPostgres(dir string) (Postgres, error) {
	s, err := pgtest.Start(dir)
	if err != nil {
		return nil, err
	}
	return s, nil
}

var _ Postgres = (*pgtest.Server)(nil)
