//go:build unix

package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// shmDMSOffset is the byte of a WAL database's -shm file on which every
// open SQLite connection holds a read lock for as long as it is open
// (UNIX_SHM_DMS in SQLite's os_unix.c: 120 + 8 lock bytes). qqd's sqlite
// plugin keeps its connections open while qqd runs.
const shmDMSOffset = 128

// dbInUse returns the pid of a process that has the SQLite database at
// path open, or 0 when none has. It asks the kernel (F_GETLK) which
// process, if any, holds a lock on the -shm file's DMS byte. Call it
// before this process opens the database: closing the file it opens
// drops every POSIX lock this process holds on it.
func dbInUse(path string) (int, error) {
	f, err := os.Open(path + "-shm")
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil // no connection has it open in WAL mode
	}
	if err != nil {
		return 0, fmt.Errorf("check whether %s is in use: %w", path, err)
	}
	defer f.Close()
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: io.SeekStart, Start: shmDMSOffset, Len: 1}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_GETLK, &lk); err != nil {
		return 0, fmt.Errorf("check whether %s is in use: %w", path, err)
	}
	if lk.Type == syscall.F_UNLCK {
		return 0, nil
	}
	return int(lk.Pid), nil
}
