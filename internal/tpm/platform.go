package tpm

import (
	"io"
	"os"
	"path/filepath"

	"github.com/bulwark-iot/bulwark/internal/api"
)

// Where Linux exposes the measured-boot logs and the SecureBoot variable.
const (
	EventLogPath      = "/sys/kernel/security/tpm0/binary_bios_measurements"
	IMALogPath        = "/sys/kernel/security/ima/binary_runtime_measurements"
	SecureBootVarPath = "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
)

// SecureBoot states, as in api.Evidence.SecureBoot.
const (
	SecureBootEnabled  = "enabled"
	SecureBootDisabled = "disabled"
	SecureBootUnknown  = "unknown"
)

// Platform reads the platform's attestation facts from the files the
// kernel exposes. The zero Platform reads the real paths; Root, when set,
// is prepended to each (for tests). Nothing it reads is an error that
// should stop the agent: a missing, unreadable or oversized file reads as
// absent.
type Platform struct {
	Root string
}

func (p Platform) path(abs string) string {
	if p.Root == "" {
		return abs
	}
	return filepath.Join(p.Root, abs)
}

// readLimited reads a whole file, or nil when it is missing, unreadable,
// empty or larger than max (a truncated log would not verify anyway).
// securityfs files report size 0, so the size is found by reading.
func readLimited(path string, max int64) []byte {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil || len(b) == 0 || int64(len(b)) > max {
		return nil
	}
	return b
}

// EventLog returns the TCG PC Client measured-boot event log
// (EventLogPath), or nil when the platform has none or it exceeds
// api.MaxEventLog.
func (p Platform) EventLog() []byte { return readLimited(p.path(EventLogPath), api.MaxEventLog) }

// IMALog returns the IMA binary measurement list (IMALogPath), or nil
// when the kernel has no IMA or the list exceeds api.MaxIMALog.
func (p Platform) IMALog() []byte { return readLimited(p.path(IMALogPath), api.MaxIMALog) }

// SecureBoot returns SecureBootEnabled or SecureBootDisabled from the
// UEFI SecureBoot variable (4 attribute bytes, then the value byte), or
// SecureBootUnknown when it cannot be read (no UEFI, no efivarfs).
func (p Platform) SecureBoot() string {
	b := readLimited(p.path(SecureBootVarPath), 64)
	if len(b) != 5 {
		return SecureBootUnknown
	}
	switch b[4] {
	case 1:
		return SecureBootEnabled
	case 0:
		return SecureBootDisabled
	}
	return SecureBootUnknown
}

// AddTo sets ev's EventLog, IMALog and SecureBoot from the platform.
func (p Platform) AddTo(ev *api.Evidence) {
	ev.EventLog = p.EventLog()
	ev.IMALog = p.IMALog()
	ev.SecureBoot = p.SecureBoot()
}

// ReadEventLog is Platform{}.EventLog.
func ReadEventLog() []byte { return Platform{}.EventLog() }

// ReadIMALog is Platform{}.IMALog.
func ReadIMALog() []byte { return Platform{}.IMALog() }

// SecureBoot is Platform{}.SecureBoot.
func SecureBoot() string { return Platform{}.SecureBoot() }
