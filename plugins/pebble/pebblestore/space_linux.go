package pebblestore

import "syscall"

// diskSpace returns the size of the filesystem that holds path and the
// space on it that an unprivileged process may still use.
func diskSpace(path string) (size, avail int64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, 0, err
	}
	return int64(st.Blocks) * st.Bsize, int64(st.Bavail) * st.Bsize, nil
}
