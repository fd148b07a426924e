package daemon

import (
	"runtime/debug"
	"strings"
)

// version is set by the linker for release builds:
// -ldflags "-X github.com/qqchat/qq/daemon.version=1.2.3".
var version string

// Version returns qqd's version as semver without a leading "v": the
// linker-set value, else the main module's version from the build info, else
// "0.1.0-dev" for a development build.
func Version() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			return strings.TrimPrefix(v, "v")
		}
	}
	return "0.1.0-dev"
}
