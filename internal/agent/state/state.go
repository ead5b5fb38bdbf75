// Package state owns the agent's state directory: the file layout, the
// enrolment record, pending command acknowledgements, and crash-safe writes.
//
// Every file is written atomically (temporary file, fsync, rename, fsync of
// the directory). Changes that span several files (a new key with its
// certificate) go through Commit, which stages the files and then switches
// them in a way Recover can finish after a crash, so the directory always
// holds either the old set or the new one.
//
// The functions are safe for concurrent use by one process only in the
// sense that each write is atomic; callers serialise writes to the same
// file themselves.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
)

// DefaultDir is the state directory used when none is given.
const DefaultDir = "/var/lib/bulwark-agent"

// Names of the files in the state directory.
const (
	StateFile  = "state.json"  // enrolment record (State)
	KeyFile    = "device.key"  // device private key, PKCS #8 PEM, mode 0600
	CertFile   = "device.crt"  // device certificate, PEM
	CAFile     = "ca.pem"      // trust anchor for the server certificate
	AcksFile   = "acks.json"   // command acknowledgements not yet delivered
	SocketFile = "agent.sock"  // local API socket of the running daemon
	LockFile   = "agent.lock"  // held by the running daemon
	commitFile = "commit.json" // marks a staged multi-file change as decided
	stagedExt  = ".next"
)

// ErrNotEnrolled is returned by Load when the directory holds no enrolment.
var ErrNotEnrolled = errors.New("not enrolled")

// State is the enrolment record kept in state.json.
type State struct {
	DeviceID     string    `json:"device_id"`
	Server       string    `json:"server"`
	EnrolledAt   time.Time `json:"enrolled_at"`
	KeyAssurance string    `json:"key_assurance,omitempty"`
	// CheckinInterval is the server's suggested check-in interval in
	// seconds at enrolment; zero when it gave none.
	CheckinInterval int `json:"checkin_interval_seconds,omitempty"`
	// TPM names the TPM holding the device key (KeyAssurance "tpm"): a
	// device path or swtpm:HOST:PORT.
	TPM string `json:"tpm,omitempty"`
}

// EnsureDir creates dir with mode 0700 if needed, and tightens the mode of
// an existing directory to 0700.
func EnsureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating state directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("state directory %s is not a directory", dir)
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("state directory: %w", err)
		}
	}
	return nil
}

// Load reads the enrolment record of dir. It returns an error wrapping
// ErrNotEnrolled when there is none.
func Load(dir string) (*State, error) {
	data, err := os.ReadFile(filepath.Join(dir, StateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: no %s in %s", ErrNotEnrolled, StateFile, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("reading state: %w", err)
	}
	var st State
	if err := api.DecodeBytes(data, 64<<10, &st); err != nil {
		return nil, fmt.Errorf("reading %s: %w", filepath.Join(dir, StateFile), err)
	}
	if st.DeviceID == "" || st.Server == "" {
		return nil, fmt.Errorf("reading %s: device_id and server are required", filepath.Join(dir, StateFile))
	}
	return &st, nil
}

// Marshal encodes st for state.json.
func (st *State) Marshal() []byte {
	b, _ := json.MarshalIndent(st, "", "  ")
	return append(b, '\n')
}

// WriteFile writes data to path atomically with the given mode: a reader
// sees the old content or the new, never a mix, even after a crash.
func WriteFile(path string, data []byte, mode fs.FileMode) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	// CreateTemp makes the file 0600; widen only if asked, before any data.
	if err := f.Chmod(mode); err != nil {
		return fail(err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

// File is one file of a Commit.
type File struct {
	Name string // base name inside the state directory
	Data []byte
	Mode fs.FileMode
}

// Commit replaces several files of dir as one change. Each file is first
// staged as NAME.next; then a commit record naming them is written (the
// decision point); then the staged files are renamed into place and the
// record removed. A crash before the record leaves the old files (Recover
// deletes the staged ones); a crash after it is finished by Recover.
func Commit(dir string, files []File) error {
	names := make([]string, 0, len(files))
	for _, f := range files {
		if strings.ContainsRune(f.Name, filepath.Separator) || f.Name == commitFile {
			return fmt.Errorf("commit: bad file name %q", f.Name)
		}
		if err := WriteFile(filepath.Join(dir, f.Name+stagedExt), f.Data, f.Mode); err != nil {
			return fmt.Errorf("commit: staging: %w", err)
		}
		names = append(names, f.Name)
	}
	rec, _ := json.Marshal(names)
	if err := WriteFile(filepath.Join(dir, commitFile), rec, 0o600); err != nil {
		discardStaged(dir)
		return fmt.Errorf("commit: %w", err)
	}
	return Recover(dir)
}

// Recover finishes a Commit interrupted by a crash, or discards one that
// was never decided. Load callers run it before reading identity files.
func Recover(dir string) error {
	data, err := os.ReadFile(filepath.Join(dir, commitFile))
	if errors.Is(err, fs.ErrNotExist) {
		return discardStaged(dir)
	}
	if err != nil {
		return fmt.Errorf("recovering state: %w", err)
	}
	var names []string
	if err := json.Unmarshal(data, &names); err != nil {
		// A torn record cannot exist (it is written atomically); treat a
		// corrupt one as undecided.
		os.Remove(filepath.Join(dir, commitFile))
		return discardStaged(dir)
	}
	for _, n := range names {
		if strings.ContainsRune(n, filepath.Separator) || n == "" {
			continue
		}
		err := os.Rename(filepath.Join(dir, n+stagedExt), filepath.Join(dir, n))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("recovering state: %w", err)
		}
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(dir, commitFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("recovering state: %w", err)
	}
	return syncDir(dir)
}

func discardStaged(dir string) error {
	staged, _ := filepath.Glob(filepath.Join(dir, "*"+stagedExt))
	for _, s := range staged {
		os.Remove(s)
	}
	return nil
}

// LoadAcks reads the pending acknowledgements of dir; none is not an error.
func LoadAcks(dir string) ([]api.CommandAck, error) {
	data, err := os.ReadFile(filepath.Join(dir, AcksFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading pending acks: %w", err)
	}
	var acks []api.CommandAck
	if err := api.DecodeBytes(data, 16<<20, &acks); err != nil {
		return nil, fmt.Errorf("reading %s: %w", filepath.Join(dir, AcksFile), err)
	}
	return acks, nil
}

// SaveAcks records the pending acknowledgements of dir; an empty list
// removes the file.
func SaveAcks(dir string, acks []api.CommandAck) error {
	p := filepath.Join(dir, AcksFile)
	if len(acks) == 0 {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("clearing pending acks: %w", err)
		}
		return nil
	}
	b, err := json.Marshal(acks)
	if err != nil {
		return err
	}
	return WriteFile(p, b, 0o600)
}
