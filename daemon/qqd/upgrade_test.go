package main

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/qqchat/qq/daemon/daemontest"
)

// TestStorageUpgradeGuard: a data directory of a release whose default
// storage was sqlite (a qq.db holding a user, no pebble store). qqd on
// its defaults refuses to start, and so does qqd -t, saying what to do;
// no pebble store appears. With storage.plugin sqlite chosen it starts
// on that database (the user logs in), and a reload that drops the
// choice is refused and the site keeps running on it.
func TestStorageUpgradeGuard(t *testing.T) {
	dir := t.TempDir()
	users, _ := seedUsers(t, dir, "sqlite", 1, false)
	db, pebble := filepath.Join(dir, "qq.db"), filepath.Join(dir, "qq.pebble")
	wantMsg := []string{
		"data_dir " + dir + " holds a SQLite database (" + db + ") from an earlier qqd whose default storage was sqlite",
		"set `storage: {plugin: sqlite}` in qq.yaml",
		"qqd storage migrate -from-plugin sqlite -from " + db + " -to-plugin pebble -to " + pebble,
	}
	noPebble := func(when string) {
		t.Helper()
		if _, err := os.Lstat(pebble); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s: %s exists (%v): an empty pebble store was made beside qq.db", when, pebble, err)
		}
	}

	// The defaults, as a site that relied on them starts qqd; every
	// listener on a free port.
	defaults := writeConfig(t, t.TempDir(), "listen: 127.0.0.1:0\nmetrics: {listen: 127.0.0.1:0}\nweb: {listen: 127.0.0.1:0}\n")
	for _, args := range [][]string{
		{"-config", defaults, "-data-dir", dir},
		{"-t", "-data-dir", dir},
	} {
		stdout, stderr, err := runQQD(t, args...)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Fatalf("qqd %q = %v, want exit status 1; stdout %q, stderr:\n%s", args, err, stdout, stderr)
		}
		for _, w := range wantMsg {
			if !strings.Contains(stderr, w) {
				t.Errorf("qqd %q: stderr lacks %q:\n%s", args, w, stderr)
			}
		}
		noPebble(strings.Join(args, " "))
	}

	// sqlite chosen: it runs on the old database.
	conf := writeConfig(t, t.TempDir(), "storage: {plugin: sqlite}\n")
	p := startQQD(t, dir, "-config", conf)
	login := func() {
		t.Helper()
		c := daemontest.DialRaw(t, p.addr)
		c.Expect(`{"type":"hello"}`)
		c.Login(users[0], "password1")
		c.C.Close()
	}
	login()

	// A reload back to the defaults is refused, with the same message.
	writeConfig(t, filepath.Dir(conf), "storage: {plugin: }\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, `reload refused.*holds a SQLite database`)
	login()
	if err := p.signal(t, syscall.SIGTERM); err != nil {
		t.Fatalf("qqd exit after SIGTERM: %v", err)
	}
	noPebble("after the sqlite run")
}
