// Package config loads and validates the configuration of the qqd chat
// server.
//
// # Layering
//
// A configuration is built from four layers; each later layer overrides the
// keys it sets and leaves every other key alone:
//
//  1. defaults in code ([Default], the single source of truth for them);
//  2. a YAML file ([Options].File), optional;
//  3. environment variables named QQD_* ([Options].Env);
//  4. overrides, normally from command-line flags ([Options].Overrides).
//
// [Load] merges the layers, decodes the result into a [Config] and validates
// it. Unknown keys, values of the wrong type and invalid values are all
// errors, and every problem is reported at once, naming the key and the
// layer it came from, for example:
//
//	config: qq.yaml: unknown key "limits.max_frame"
//	config: env QQD_LIMITS__IDLE_TIMEOUT: limits.idle_timeout: invalid duration "5": missing unit, use Go syntax such as "10s"
//	config: limits.max_body_bytes: must be at least 4096 (got 100)
//
// # Keys
//
// Keys are dotted paths of the koanf struct tags, e.g. "listen" or
// "limits.max_frame_bytes". In YAML they nest as mappings. Durations use Go
// syntax ("500ms", "10s", "5m", "24h"); a bare number is rejected unless it is
// 0, so a forgotten unit is not silently read as nanoseconds. A key given an
// empty (null) value in YAML keeps the value of the layers below it.
//
// # Plugins
//
// Storage and message filters are plugins, each with a "config" mapping
// that this package does not interpret: it is passed to the plugin as JSON
// and the plugin validates it. Any key is accepted below storage.config, and
// its keys merge across layers like other keys. The default storage is the
// built-in pebble plugin, and the default storage.config holds its settings
// with their defaults; they apply only to that plugin. When a layer sets
// storage.plugin to the other built-in, sqlite, storage.config holds
// sqlite's defaults ([StorageDefaults]) under the keys set by the file, the
// environment and the overrides; when a layer sets storage.command (or
// names no built-in), it holds only the keys set.
//
// Earlier releases defaulted to sqlite, keeping their data in
// <data_dir>/qq.db. [Config.CheckStorageUpgrade], which qqd runs before it
// starts and on reload, refuses to run pebble by default beside such a
// database; choosing a plugin explicitly, or migrating, settles it.
//
// filters is a list of entries (plugin, command, name, on_failure, timeout,
// config). Lists are not merged: a layer that sets filters replaces the whole
// list, so a YAML file listing one filter runs only that one, and
// "filters: []" runs none. Other keys in an entry are errors naming the entry
// by index, e.g. "filters[1].on_falure". After decoding, [Load] fills each
// entry's empty name (from its plugin or command), on_failure ("reject") and
// zero timeout (2s).
//
// Values below a config key are only checked to be encodable as JSON;
// values from environment variables are strings.
//
// # Environment variable names
//
// An environment variable configures a key when its name starts with QQD_.
// The rest of the name is lower-cased and a double underscore separates
// levels, while a single underscore stays part of the key:
//
//	QQD_LISTEN=0.0.0.0:5190                 -> listen
//	QQD_DATA_DIR=/var/lib/qqd               -> data_dir
//	QQD_LIMITS__MAX_FRAME_BYTES=131072      -> limits.max_frame_bytes
//	QQD_STORAGE__PLUGIN=sqlite              -> storage.plugin
//	QQD_STORAGE__CONFIG__DEDUP_WINDOW=48h   -> storage.config.dedup_window
//
// The last one sets a key of the storage plugin's config (always lower-case,
// with a string value, which suits string keys such as path, dedup_window
// or sqlite's synchronous; set numbers and booleans in the YAML file). Lists cannot be set from the environment: filters
// and storage.command are errors there; set them in the YAML file or the
// overrides.
//
// Only the environment passed in [Options].Env is consulted, never the
// process environment directly; qqd passes os.Environ().
package config
