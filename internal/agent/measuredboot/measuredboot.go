// Package measuredboot emulates a UEFI measured boot on a TPM whose
// platform has no measuring firmware (swtpm, a development board): it
// extends the boot PCRs 0-9 with the events of a typical Secure Boot
// (firmware, configuration, boot loader, kernel, separators) and writes
// the matching TCG event log and SecureBoot variable under a root
// directory, where tpm.Platform{Root: root} reads them. A device attested
// this way shows what a real one shows; it proves nothing about a real
// boot, so production devices never use it.
package measuredboot

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bulwark-iot/bulwark/internal/attest/softtpm"
	"github.com/bulwark-iot/bulwark/internal/tpm"
)

// Options configure Emulate.
type Options struct {
	// SecureBoot is the SecureBoot state measured and written.
	SecureBoot bool
	// Firmware and Kernel name the firmware version and kernel measured
	// (defaults "1.0" and /boot/vmlinuz-6.6.0).
	Firmware, Kernel string
}

// Emulate measures the boot into dev and writes the event log and the
// SecureBoot variable under root. The boot PCRs must be at their reset
// value (all zero): a boot is measured once per TPM reset.
func Emulate(dev *tpm.TPM, root string, o Options) error {
	cur, err := dev.ReadPCRs([]int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	if err != nil {
		return err
	}
	zero := make([]byte, 32)
	for _, p := range cur {
		if !bytes.Equal(p.Digest, zero) {
			return fmt.Errorf("PCR %d is already extended: a boot is measured from a TPM reset (restart swtpm first)", p.Index)
		}
	}
	sim, err := softtpm.New(softtpm.Options{})
	if err != nil {
		return err
	}
	if err := sim.Boot(softtpm.BootConfig{SecureBoot: o.SecureBoot, Firmware: o.Firmware, Kernel: o.Kernel}); err != nil {
		return err
	}
	log := sim.EventLog()
	if len(log.Events) == 0 {
		return errors.New("measured boot: no events")
	}
	for _, e := range log.Events {
		if err := dev.ExtendPCR(e.PCR, e.Digest[:]); err != nil {
			return fmt.Errorf("extending PCR %d: %w", e.PCR, err)
		}
	}
	sb := byte(0)
	if o.SecureBoot {
		sb = 1
	}
	files := map[string][]byte{
		tpm.EventLogPath:      log.Bytes(),
		tpm.SecureBootVarPath: {0x06, 0, 0, 0, sb}, // attributes BS|RT, then the value
	}
	for p, data := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}
