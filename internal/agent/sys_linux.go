package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bulwark-iot/bulwark/internal/agent/state"
	"golang.org/x/sys/unix"
)

// freeShare is the share of blocks available to unprivileged users on the
// filesystem holding dir.
func freeShare(dir string) (float64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	if st.Blocks == 0 {
		return 0, errors.New("filesystem reports no blocks")
	}
	return float64(st.Bavail) / float64(st.Blocks), nil
}

// lockDir takes the state directory's lock, so that one daemon at a time
// uses it. The lock goes with the process, so a crash cannot leave it held.
func lockDir(dir string) (unlock func(), err error) {
	p := filepath.Join(dir, state.LockFile)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("locking state directory: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("another bulwark-agent is already running with state directory %s", dir)
		}
		return nil, fmt.Errorf("locking state directory: %w", err)
	}
	return func() {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}, nil
}
