//go:build !linux

package pebblestore

import "errors"

// diskSpace is not implemented here: the store then keeps no free-space
// reserve.
func diskSpace(string) (size, avail int64, err error) {
	return 0, 0, errors.ErrUnsupported
}
