//go:build unix

package integrity

import (
	"os"
	"syscall"
)

// openNoFollow opens a file for reading without following a symbolic link
// in its last element (one swapped in since the walk saw a regular file)
// and without blocking on a FIFO.
func openNoFollow(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
}
