package tpm_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/tpm"
)

func writeFile(t *testing.T, root, abs string, data []byte) {
	t.Helper()
	p := filepath.Join(root, abs)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestPlatform(t *testing.T) {
	root := t.TempDir()
	p := tpm.Platform{Root: root}

	// Nothing there: absent, not an error.
	if p.EventLog() != nil || p.IMALog() != nil || p.SecureBoot() != tpm.SecureBootUnknown {
		t.Fatal("missing files read as present")
	}

	eventLog := bytes.Repeat([]byte{1, 2, 3}, 1000)
	ima := []byte("ima list")
	writeFile(t, root, tpm.EventLogPath, eventLog)
	writeFile(t, root, tpm.IMALogPath, ima)
	var ev api.Evidence
	for _, c := range []struct {
		value []byte
		want  string
	}{
		{[]byte{0x06, 0, 0, 0, 1}, tpm.SecureBootEnabled},
		{[]byte{0x06, 0, 0, 0, 0}, tpm.SecureBootDisabled},
		{[]byte{0x06, 0, 0, 0, 7}, tpm.SecureBootUnknown},
		{[]byte{1}, tpm.SecureBootUnknown},
		{[]byte{0x06, 0, 0, 0, 1, 0}, tpm.SecureBootUnknown},
	} {
		writeFile(t, root, tpm.SecureBootVarPath, c.value)
		if got := p.SecureBoot(); got != c.want {
			t.Errorf("SecureBoot with %x = %q, want %q", c.value, got, c.want)
		}
	}
	writeFile(t, root, tpm.SecureBootVarPath, []byte{0x06, 0, 0, 0, 1})
	p.AddTo(&ev)
	if !bytes.Equal(ev.EventLog, eventLog) || !bytes.Equal(ev.IMALog, ima) || ev.SecureBoot != tpm.SecureBootEnabled {
		t.Errorf("AddTo = %d bytes of event log, %q, %q", len(ev.EventLog), ev.IMALog, ev.SecureBoot)
	}

	// Oversized logs read as absent (a truncated log would not verify).
	writeFile(t, root, tpm.IMALogPath, make([]byte, api.MaxIMALog+1))
	if p.IMALog() != nil {
		t.Error("oversized IMA log returned")
	}
	writeFile(t, root, tpm.IMALogPath, make([]byte, api.MaxIMALog))
	if len(p.IMALog()) != api.MaxIMALog {
		t.Error("IMA log of exactly the limit not returned")
	}
	// A directory where a file should be is absent too.
	os.Remove(filepath.Join(root, tpm.EventLogPath))
	os.Mkdir(filepath.Join(root, tpm.EventLogPath), 0o755)
	if p.EventLog() != nil {
		t.Error("directory read as an event log")
	}
}

// TestPlatformReal reads the host's files: whatever they hold, nothing
// panics and SecureBoot is one of the three states.
func TestPlatformReal(t *testing.T) {
	tpm.ReadEventLog()
	tpm.ReadIMALog()
	switch s := tpm.SecureBoot(); s {
	case tpm.SecureBootEnabled, tpm.SecureBootDisabled, tpm.SecureBootUnknown:
		t.Logf("SecureBoot: %s", s)
	default:
		t.Errorf("SecureBoot() = %q", s)
	}
}
