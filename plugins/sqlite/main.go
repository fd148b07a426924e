// Command sqlite is qq's SQLite storage plugin as a standalone executable,
// for operators who name it by path in qq.yaml (storage.command). qqd
// serves the same plugin itself as "qqd plugin sqlite"; see
// plugins/sqlite/sqlitestore for its behaviour and configuration.
package main

import (
	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/sqlite/sqlitestore"
)

func main() { plugins.ServeStorage(sqlitestore.New) }
