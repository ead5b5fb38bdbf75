package update

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/bulwark-iot/bulwark/internal/agent/state"
)

// FileABInstaller is an A/B installer whose two slots are directories and
// whose boot loader is a file. It behaves like a partition installer (the
// image goes into the inactive slot, the boot slot is switched in one
// atomic write, Commit marks the slot good) and exists to test the Updater
// against A/B semantics and to serve as the model for a real one, which
// would write block devices and boot-loader variables instead:
//
//	<Root>/slots/a/image, version   slot A: the image, and its version once complete
//	<Root>/slots/b/image, version   slot B
//	<Root>/boot.json                {"slot":"a","good":true}
//
// A slot counts as holding a version only when its version file exists;
// Install removes that file before touching the image and writes it last.
type FileABInstaller struct {
	// Root holds the slots and the boot file. Required.
	Root string
}

type abBoot struct {
	Slot string `json:"slot"`
	// Good is false from a Switch until the Commit that accepts the slot;
	// a real boot loader falls back to the other slot when it boots an
	// unaccepted one too often.
	Good bool `json:"good"`
}

var abSlots = [2]string{"a", "b"}

func (a *FileABInstaller) slotDir(s string) string { return filepath.Join(a.Root, "slots", s) }

func (a *FileABInstaller) boot() (abBoot, error) {
	var b abBoot
	data, err := os.ReadFile(filepath.Join(a.Root, "boot.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return b, nil
	}
	if err != nil {
		return b, fmt.Errorf("reading boot slot: %w", err)
	}
	if err := json.Unmarshal(data, &b); err != nil || b.Slot != "a" && b.Slot != "b" {
		return b, fmt.Errorf("reading boot slot: bad %s", filepath.Join(a.Root, "boot.json"))
	}
	return b, nil
}

func (a *FileABInstaller) setBoot(b abBoot) error {
	data, _ := json.Marshal(b)
	return state.WriteFile(filepath.Join(a.Root, "boot.json"), data, 0o644)
}

// slotVersion returns the version in slot s, or "" when the slot holds no
// complete image.
func (a *FileABInstaller) slotVersion(s string) (string, error) {
	data, err := os.ReadFile(filepath.Join(a.slotDir(s), "version"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(data)), nil
}

// Current implements Installer: the version in the boot slot.
func (a *FileABInstaller) Current(ctx context.Context) (string, error) {
	b, err := a.boot()
	if err != nil || b.Slot == "" {
		return "", err
	}
	return a.slotVersion(b.Slot)
}

// Install implements Installer: it writes the image into the slot that is
// not booted.
func (a *FileABInstaller) Install(ctx context.Context, artifactPath string, r Release) error {
	cur, err := a.Current(ctx)
	if err != nil {
		return err
	}
	if same, err := checkVersion(cur, r); err != nil {
		return fmt.Errorf("install: %w", err)
	} else if same {
		return fmt.Errorf("install: %s is already active", r.Version)
	}
	b, err := a.boot()
	if err != nil {
		return err
	}
	target := "a"
	if b.Slot == "a" {
		target = "b"
	}
	dir := a.slotDir(target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	// Invalidate the slot first, durably, so a crash mid-write leaves a
	// slot that is known to be empty.
	if err := os.Remove(filepath.Join(dir, "version")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("install: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	if err := copyImage(ctx, artifactPath, filepath.Join(dir, "image")); err != nil {
		return fmt.Errorf("install: writing slot %s: %w", target, err)
	}
	if err := state.WriteFile(filepath.Join(dir, "version"), []byte(r.Version+"\n"), 0o644); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	return nil
}

func copyImage(ctx context.Context, src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = io.CopyBuffer(onlyWriter{out}, in, make([]byte, DefaultBufferSize))
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// Switch implements Installer: one atomic write of the boot file.
func (a *FileABInstaller) Switch(ctx context.Context, version string) error {
	if version == "" {
		return errors.New("switch: an A/B device always boots a version")
	}
	b, err := a.boot()
	if err != nil {
		return err
	}
	for _, s := range abSlots {
		v, err := a.slotVersion(s)
		if err != nil {
			return fmt.Errorf("switch: %w", err)
		}
		if v != version {
			continue
		}
		if b.Slot == s {
			return nil
		}
		return a.setBoot(abBoot{Slot: s})
	}
	return fmt.Errorf("switch: no slot holds %s", version)
}

// Commit implements Installer: the boot slot is marked good, and the other
// slot is invalidated unless it holds keep.
func (a *FileABInstaller) Commit(ctx context.Context, keep string) error {
	b, err := a.boot()
	if err != nil {
		return err
	}
	if b.Slot == "" {
		return nil
	}
	if !b.Good {
		b.Good = true
		if err := a.setBoot(b); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
	}
	for _, s := range abSlots {
		if s == b.Slot {
			continue
		}
		v, err := a.slotVersion(s)
		if err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		if v != "" && v != keep {
			if err := os.Remove(filepath.Join(a.slotDir(s), "version")); err != nil {
				return fmt.Errorf("commit: %w", err)
			}
		}
	}
	return nil
}

// Recover implements Installer. A slot interrupted mid-write has no
// version file and is simply overwritten next time, so there is nothing
// to clean.
func (a *FileABInstaller) Recover(ctx context.Context) error { return nil }
