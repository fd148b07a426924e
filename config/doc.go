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
// # Environment variable names
//
// An environment variable configures a key when its name starts with QQD_.
// The rest of the name is lower-cased and a double underscore separates
// levels, while a single underscore stays part of the key:
//
//	QQD_LISTEN=0.0.0.0:5190               -> listen
//	QQD_DATA_DIR=/var/lib/qqd             -> data_dir
//	QQD_LIMITS__MAX_FRAME_BYTES=131072    -> limits.max_frame_bytes
//	QQD_STORAGE__SQLITE__SYNCHRONOUS=full -> storage.sqlite.synchronous
//
// Only the environment passed in [Options].Env is consulted, never the
// process environment directly; qqd passes os.Environ().
package config
