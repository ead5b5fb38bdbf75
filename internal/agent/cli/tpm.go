package cli

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"

	"github.com/bulwark-iot/bulwark/internal/agent/measuredboot"
	tpmdev "github.com/bulwark-iot/bulwark/internal/tpm"
)

const tpmUsage = `usage: bulwark-agent tpm <info|emulate-boot|extend> --tpm SPEC [flags]

  info          print the TPM's endorsement key hash (register it with
                "bulwark ek register" for zero-touch enrolment) and whether
                it has an EK certificate
  emulate-boot  measure an emulated UEFI Secure Boot into a TPM whose
                platform has no measuring firmware (swtpm) and write the
                event log under --platform-root (for evaluation only)
  extend        extend a PCR with SHA-256 of --data without logging it:
                simulates tampering, which the next attestation detects
`

// tpmCmd runs the TPM maintenance subcommands.
func (c *cmd) tpmCmd(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(c.stderr, tpmUsage)
		return exitUsage
	}
	sub := args[0]
	c.name = "tpm " + sub
	fs, _ := c.flags("--tpm SPEC [flags]")
	spec := fs.String("tpm", "", "the TPM: a device path such as /dev/tpmrm0, or swtpm:HOST:PORT; required")
	root := fs.String("platform-root", "", "emulate-boot: `DIR` to write the event log and SecureBoot variable under; required")
	secureBoot := fs.Bool("secure-boot", true, "emulate-boot: the SecureBoot state to measure")
	pcr := fs.Int("pcr", 4, "extend: the PCR")
	data := fs.String("data", "", "extend: the data whose SHA-256 is extended; required")
	switch sub {
	case "info", "emulate-boot", "extend":
	default:
		fmt.Fprint(c.stderr, tpmUsage)
		return c.errorf(exitUsage, "unknown subcommand %q", sub)
	}
	if code, ok := c.parse(fs, args[1:]); !ok {
		return code
	}
	if *spec == "" {
		return c.errorf(exitUsage, "--tpm is required")
	}
	dev, err := tpmdev.Open(*spec)
	if err != nil {
		return c.errorf(exitFail, "%v", err)
	}
	defer dev.Close()
	switch sub {
	case "info":
		ek, err := dev.EK()
		if err != nil {
			return c.errorf(exitFail, "%v", err)
		}
		der, err := x509.MarshalPKIXPublicKey(ek.Public)
		if err != nil {
			return c.errorf(exitFail, "endorsement key: %v", err)
		}
		sum := sha256.Sum256(der)
		fmt.Fprintln(c.stdout, hex.EncodeToString(sum[:]))
		cert := "no EK certificate"
		if len(ek.Certificate) > 0 {
			cert = "EK certificate present"
		}
		fmt.Fprintf(c.stderr, "endorsement key SHA-256 (PKIX DER) above; %s\n", cert)
	case "emulate-boot":
		if *root == "" {
			return c.errorf(exitUsage, "--platform-root is required")
		}
		if err := measuredboot.Emulate(dev, *root, measuredboot.Options{SecureBoot: *secureBoot}); err != nil {
			return c.errorf(exitFail, "%v", err)
		}
		fmt.Fprintf(c.stderr, "measured an emulated boot into %s; run the agent with --platform-root %s\n", *spec, *root)
	case "extend":
		if *data == "" {
			return c.errorf(exitUsage, "--data is required")
		}
		if *pcr < 0 || *pcr > 23 {
			return c.errorf(exitUsage, "--pcr must be 0-23")
		}
		sum := sha256.Sum256([]byte(*data))
		if err := dev.ExtendPCR(*pcr, sum[:]); err != nil {
			return c.errorf(exitFail, "%v", err)
		}
		fmt.Fprintf(c.stderr, "extended PCR %d of %s without logging it\n", *pcr, *spec)
	}
	return exitOK
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return fmt.Sprint([]string(*l)) }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }
