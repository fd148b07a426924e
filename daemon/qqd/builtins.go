package main

import (
	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/antispam/antispam"
	"github.com/qqchat/qq/plugins/pebble/pebblestore"
	"github.com/qqchat/qq/plugins/pluginset"
	"github.com/qqchat/qq/plugins/postgres/pgstore"
	"github.com/qqchat/qq/plugins/sqlite/sqlitestore"
	"github.com/qqchat/qq/plugins/wordfilter/wordfilter"
)

// builtins are the plugins compiled into qqd: storages "sqlite",
// "pebble" and "postgres", filters
// "wordfilter" and "antispam". qqd serves them as "qqd plugin <name>"
// (or in process with plugins.in_process). A custom build adds its own
// here.
func builtins() pluginset.Builtins {
	return pluginset.Builtins{
		Storages: map[string]plugins.StorageFactory{
			"sqlite": sqlitestore.New, "pebble": pebblestore.New, "postgres": pgstore.New,
		},
		Filters: map[string]plugins.FilterFactory{"wordfilter": wordfilter.New, "antispam": antispam.New},
	}
}
