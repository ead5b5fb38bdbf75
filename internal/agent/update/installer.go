package update

import (
	"context"
	"errors"
	"fmt"
)

// ErrDowngrade is returned when a release is older than the installed one
// and the release does not allow a downgrade.
var ErrDowngrade = errors.New("refusing to install an older version")

// Release describes what is being installed.
type Release struct {
	// Product names the software; informational for the installers here.
	Product string
	// Version is the release's semantic version. It names the installed
	// copy, so it must parse with ParseVersion.
	Version string
	// AllowDowngrade permits installing a version older than the current
	// one. It must only be set from an explicit, signed downgrade
	// instruction; the zero value refuses downgrades.
	AllowDowngrade bool
}

// An Installer puts releases on the device. The Updater drives it and
// keeps the journal; the installer only has to make each step atomic and
// idempotent, because after a crash the Updater repeats or reverses the
// interrupted step.
//
// The model suits both kinds of installer:
//
//   - a directory installer unpacks each version into its own directory
//     and switches a symlink;
//   - an A/B installer writes the image into the inactive slot, switches
//     the boot slot, and on Commit marks the slot good so the boot loader
//     stops falling back.
//
// Rollback is Switch to the previous version, which the journal records;
// so an installer keeps no history of its own beyond the versions it has
// on disk.
type Installer interface {
	// Current returns the active version, or "" when none is installed.
	Current(ctx context.Context) (string, error)
	// Install stages the artifact at artifactPath as r.Version without
	// making it active. It replaces whatever an interrupted earlier
	// attempt left for the same version, and must not touch the active
	// version. (A directory installer also leaves the version Commit
	// kept; an A/B installer overwrites it, as it has only one spare slot.)
	Install(ctx context.Context, artifactPath string, r Release) error
	// Switch makes a staged or kept version active, atomically: after a
	// crash either the old or the new version is active. Switching to the
	// active version is a no-op; "" deactivates (for a first install that
	// failed).
	Switch(ctx context.Context, version string) error
	// Commit marks the active version as good and discards every other
	// version except keep ("" keeps none), which stays available to
	// Switch back to.
	Commit(ctx context.Context, keep string) error
	// Recover removes the leftovers of an interrupted Install or Switch
	// (temporary files and directories). It never changes the active
	// version.
	Recover(ctx context.Context) error
}

// checkVersion applies anti-rollback: r may replace current only if it is
// newer, or r allows a downgrade. It reports whether r is the version
// already installed.
func checkVersion(current string, r Release) (same bool, err error) {
	to, err := ParseVersion(r.Version)
	if err != nil {
		return false, err
	}
	if current == "" {
		return false, nil
	}
	from, err := ParseVersion(current)
	if err != nil {
		return false, fmt.Errorf("installed version: %w", err)
	}
	switch c := to.Compare(from); {
	case c == 0 && current == r.Version:
		return true, nil
	case c <= 0 && !r.AllowDowngrade:
		return false, fmt.Errorf("%w: %s is not newer than the installed %s", ErrDowngrade, r.Version, current)
	}
	return false, nil
}
