//go:build !linux

package plugins

import "os/exec"

// setPdeathsig does nothing off Linux; the plugin's parent watchdog stops
// it when qqd dies.
func setPdeathsig(*exec.Cmd) {}
