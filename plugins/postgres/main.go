// Command postgres is qq's PostgreSQL storage plugin as a standalone
// executable, for operators who name it by path in qq.yaml
// (storage.command). qqd serves the same plugin itself as "qqd plugin
// postgres"; see plugins/postgres/pgstore for its behaviour and
// plugins/postgres/README.md for its configuration.
package main

import (
	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/postgres/pgstore"
)

func main() { plugins.ServeStorage(pgstore.New) }
