// Command pebble is qq's Pebble storage plugin as a standalone executable,
// for operators who name it by path in qq.yaml (storage.command). qqd
// serves the same plugin itself as "qqd plugin pebble"; see
// plugins/pebble/pebblestore for its behaviour and configuration.
package main

import (
	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/pebble/pebblestore"
)

func main() { plugins.ServeStorage(pebblestore.New) }
