package softtpm

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"fmt"
	"math/big"
	"sync"
	"time"
	"unicode/utf16"
)

// BootConfig describes a simulated UEFI boot.
type BootConfig struct {
	// SecureBoot sets the SecureBoot variable measured into PCR 7 (and
	// logs the db certificate that verified the boot loader).
	SecureBoot bool
	// Events is the approximate number of boot events; the firmware pads
	// PCR 0 with platform firmware blobs to reach it. Zero means about 30.
	Events int
	// Firmware is a version string measured as EV_S_CRTM_VERSION, so that
	// two "releases" have different PCR 0 values. Empty means "1.0".
	Firmware string
	// Kernel names the boot loader's kernel, measured into PCR 4 (as the
	// image) and PCR 9, so that two "releases" differ there.
	Kernel string
}

// Boot resets the TPM and measures a UEFI boot as firmware does: PCR 7
// Secure Boot variables, PCRs 0-6 firmware, configuration, option ROMs,
// boot manager, GPT, the EV_SEPARATOR of each PCR 0-7, the boot loader
// and kernel (EV_EFI_BOOT_SERVICES_APPLICATION in PCR 4, its db authority
// in PCR 7), grub's commands in PCR 8 and Exit Boot Services in PCR 5.
func (t *TPM) Boot(cfg BootConfig) error {
	if cfg.Firmware == "" {
		cfg.Firmware = "1.0"
	}
	if cfg.Kernel == "" {
		cfg.Kernel = "/boot/vmlinuz-6.6.0"
	}
	dbCert, err := uefiCA()
	if err != nil {
		return err
	}
	t.Reset()
	owner := guid(0x77fa9abd, 0x0359, 0x4d32, [8]byte{0xbd, 0x60, 0x28, 0xf4, 0xe7, 0x8f, 0x78, 0x4b})
	sb := byte(0)
	if cfg.SecureBoot {
		sb = 1
	}
	t.Measure(7, EvEFIVariableDriverConfig, UEFIVariable(EFIGlobalVariable, "SecureBoot", []byte{sb}))
	t.Measure(7, EvEFIVariableDriverConfig, UEFIVariable(EFIGlobalVariable, "PK", SignatureListX509(owner, dbCert)))
	t.Measure(7, EvEFIVariableDriverConfig, UEFIVariable(EFIGlobalVariable, "KEK", SignatureListX509(owner, dbCert)))
	t.Measure(7, EvEFIVariableDriverConfig, UEFIVariable(EFIImageSecurityDatabase, "db", SignatureListX509(owner, dbCert)))
	revoked := sha256.Sum256([]byte("revoked boot loader"))
	t.Measure(7, EvEFIVariableDriverConfig, UEFIVariable(EFIImageSecurityDatabase, "dbx", SignatureListSHA256(owner, revoked)))

	t.Measure(0, EvSCRTMVersion, utf16le(cfg.Firmware))
	t.Measure(0, EvEFIPlatformFirmwareBlob, blob(0xffd00000, 0x100000))
	t.Measure(0, EvCPUMicrocode, []byte("microcode rev 0x2c"))
	t.Measure(1, EvPlatformConfigFlags, []byte{1, 0, 0, 0})
	t.Measure(1, EvEFIHandoffTables, blob(0x7f000000, 2))
	t.Measure(1, EvEFIVariableBoot, UEFIVariable(EFIGlobalVariable, "BootOrder", []byte{0, 0, 1, 0}))
	t.Measure(1, EvEFIVariableBoot, UEFIVariable(EFIGlobalVariable, "Boot0000", []byte("\x01\x00\x00\x00softtpm disk")))
	t.Measure(1, EvEFIVariableBoot, UEFIVariable(EFIGlobalVariable, "Boot0001", []byte("\x01\x00\x00\x00network")))
	t.Measure(4, EvEFIAction, []byte("Calling EFI Application from Boot Option"))
	t.Measure(5, EvEFIGPTEvent, []byte("EFI PART gpt header and 2 partitions"))
	target := cfg.Events
	if target == 0 {
		target = 30
	}
	// The events still to come: 8 separators, 2 applications, 1
	// authority, 3 grub commands, 1 kernel in PCR 9, 2 exit boot services.
	for i := 0; len(t.log.Events)+17 < target; i++ {
		t.MeasureDigest(0, EvEFIPlatformFirmwareBlob, sha256.Sum256(fmt.Appendf(nil, "%s firmware volume %d", cfg.Firmware, i)), blob(0xff000000+uint64(i)<<16, 0x10000))
	}
	for pcr := 0; pcr <= 7; pcr++ {
		t.Measure(pcr, EvSeparator, []byte{0, 0, 0, 0})
	}
	t.MeasureDigest(4, EvEFIBootServicesApplication, sha256.Sum256([]byte("shimx64.efi")), imageLoad(0x7e000000, 0x100000))
	t.Measure(7, EvEFIVariableAuthority, UEFIVariable(EFIImageSecurityDatabase, "db", SignatureData(owner, dbCert)))
	t.MeasureDigest(4, EvEFIBootServicesApplication, sha256.Sum256([]byte("grubx64.efi "+cfg.Kernel)), imageLoad(0x7d000000, 0x200000))
	t.Measure(8, EvIPL, []byte("grub_cmd: set root=hd0,gpt2\x00"))
	t.Measure(8, EvIPL, []byte("grub_cmd: linux "+cfg.Kernel+" root=/dev/sda2 ima_hash=sha256\x00"))
	t.Measure(8, EvIPL, []byte("kernel_cmdline: "+cfg.Kernel+" root=/dev/sda2 ima_hash=sha256\x00"))
	t.MeasureDigest(9, EvIPL, sha256.Sum256([]byte(cfg.Kernel)), []byte(cfg.Kernel+"\x00"))
	t.Measure(5, EvEFIAction, []byte("Exit Boot Services Invocation"))
	t.Measure(5, EvEFIAction, []byte("Exit Boot Services Returned with Success"))
	return nil
}

func utf16le(s string) []byte {
	u := utf16.Encode([]rune(s + "\x00"))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return b
}

// blob is a UEFI_PLATFORM_FIRMWARE_BLOB (base, length).
func blob(base, length uint64) []byte {
	b := make([]byte, 16)
	binary.LittleEndian.PutUint64(b, base)
	binary.LittleEndian.PutUint64(b[8:], length)
	return b
}

// imageLoad is a UEFI_IMAGE_LOAD_EVENT with an empty device path.
func imageLoad(base, length uint64) []byte {
	b := make([]byte, 32)
	binary.LittleEndian.PutUint64(b, base)
	binary.LittleEndian.PutUint64(b[8:], length)
	return b
}

// uefiCA is a stand-in for a UEFI CA certificate in PK/KEK/db, made once
// per process so that every simulated boot measures the same PCR 7.
var uefiCA = sync.OnceValues(func() ([]byte, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("softtpm: db key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7),
		Subject:      pkix.Name{CommonName: "softtpm UEFI CA"},
		NotBefore:    time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return nil, fmt.Errorf("softtpm: db certificate: %w", err)
	}
	return der, nil
})
