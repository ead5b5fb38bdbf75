package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent/identity"
	"github.com/bulwark-iot/bulwark/internal/agent/state"
	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/deviceclient"
	tpmdev "github.com/bulwark-iot/bulwark/internal/tpm"
)

// TPM specs for Config.TPM and EnrollOptions.TPM.
const (
	// TPMAuto uses the kernel resource manager when the device has one,
	// else no TPM.
	TPMAuto = "auto"
	// TPMNone uses a software key.
	TPMNone = "none"
	// DefaultTPMDevice is the kernel's TPM resource manager.
	DefaultTPMDevice = "/dev/tpmrm0"
)

// bootPCRs are quoted in every attestation; PCR 10 (IMA) is added when
// the kernel keeps an IMA list.
var bootPCRs = []int{0, 1, 2, 3, 4, 5, 6, 7}

// healthReportEvery is how often a device without a TPM sends a signed
// health report (devices with one send it after each attestation).
const healthReportEvery = 10 * time.Minute

// ResolveTPM turns a --tpm value into a TPM spec, or "" for none: "auto"
// is the kernel resource manager when the device has one.
func ResolveTPM(spec string) (string, error) {
	switch spec {
	case "", TPMNone:
		return "", nil
	case TPMAuto:
		if _, err := os.Stat(DefaultTPMDevice); err == nil {
			return DefaultTPMDevice, nil
		}
		return "", nil
	}
	if spec == "sim" || strings.HasPrefix(spec, "swtpm:") || strings.HasPrefix(spec, "/") {
		return spec, nil
	}
	return "", fmt.Errorf("--tpm %q: want auto, none, a device path such as /dev/tpmrm0, or swtpm:HOST:PORT", spec)
}

// loadIdentity loads the identity of an enrolment: the TPM one (opening
// the TPM named by override, else the one recorded at enrolment) or the
// software one. The returned TPM, when not nil, is closed by the caller
// after the identity.
func loadIdentity(dir string, st *state.State, override string, open *tpmdev.TPM) (identity.Identity, *tpmdev.TPM, error) {
	if st.KeyAssurance != identity.AssuranceTPM {
		id, err := identity.LoadSoftware(dir)
		return id, nil, err
	}
	if open != nil {
		id, err := identity.LoadTPM(dir, open)
		return id, open, err
	}
	spec := st.TPM
	if override != "" && override != TPMAuto {
		if override == TPMNone {
			return nil, nil, errors.New("this device enrolled with its key in a TPM: it cannot run with --tpm none")
		}
		spec = override
	}
	if spec == "" {
		spec = DefaultTPMDevice
	}
	dev, err := tpmdev.Open(spec)
	if err != nil {
		return nil, nil, fmt.Errorf("the device key is in a TPM: %w", err)
	}
	id, err := identity.LoadTPM(dir, dev)
	if err != nil {
		dev.Close()
		return nil, nil, err
	}
	return id, dev, nil
}

// attestState serializes attestations and remembers the latest quote, to
// which health reports are bound.
type attestState struct {
	mu         sync.Mutex // held for a whole attestation
	lastQuote  string     // hex SHA-256 of the latest quote sent
	lastReport time.Time  // when the latest signed health report went out
	platform   tpmdev.Platform
}

// tpmIdentity returns the TPM identity, or nil for a software one.
func (d *daemon) tpmIdentity() *identity.TPM {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, _ := d.id.(*identity.TPM)
	return t
}

// attest quotes the boot (and IMA) PCRs with nonce, sends the evidence
// with the event logs, records the server's appraisal for the health check
// and then sends a signed health report bound to the quote.
func (d *daemon) attest(ctx context.Context, nonce []byte, reason string) error {
	tid := d.tpmIdentity()
	if tid == nil || tid.AK() == nil {
		return errors.New("this device has no TPM attestation key")
	}
	d.att.mu.Lock()
	defer d.att.mu.Unlock()
	pcrs := bootPCRs
	ima := d.att.platform.IMALog()
	if ima != nil {
		pcrs = append(append([]int(nil), bootPCRs...), 10)
	}
	ev, err := tid.AK().Quote(nonce, pcrs)
	if err != nil {
		return fmt.Errorf("quote: %w", err)
	}
	ev.EventLog = d.att.platform.EventLog()
	ev.IMALog = ima
	ev.SecureBoot = d.att.platform.SecureBoot()
	ev.Reason = reason
	if ima == nil {
		if r := d.health.lastIntegrity(); r != nil {
			ev.Files = r.Files
		}
	}
	res, err := d.currentClient().Attest(ctx, ev)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(ev.Quote)
	d.att.lastQuote = hex.EncodeToString(sum[:])
	d.recordAttestation(*res)
	lvl := d.log.Info
	if res.Status == api.AttestContraindicated {
		lvl = d.log.Error
	}
	lvl("attested", "reason", reason, "status", res.Status, "problems", res.Problems)
	return d.sendHealthReportLocked(ctx)
}

// sendHealthReportLocked signs the current health report with the device
// key and sends it; d.att.mu is held.
func (d *daemon) sendHealthReportLocked(ctx context.Context) error {
	now := time.Now()
	rep := d.healthReport(now)
	rep.QuoteDigest = d.att.lastQuote
	d.mu.Lock()
	signer := d.id.Signer()
	d.mu.Unlock()
	sr, err := deviceclient.SignHealthReport(signer, &rep)
	if err != nil {
		return err
	}
	if err := d.currentClient().SendHealthReport(ctx, sr); err != nil {
		return err
	}
	d.att.lastReport = now
	return nil
}

// afterCheckin attests when the server handed out a nonce, and sends a
// device without a TPM's signed health report when one is due.
func (d *daemon) afterCheckin(ctx context.Context, resp *api.CheckinResponse) {
	if len(resp.AttestNonce) > 0 && d.tpmIdentity() != nil {
		if err := d.attest(ctx, resp.AttestNonce, "periodic"); err != nil && ctx.Err() == nil {
			d.log.Warn("attestation failed to complete", "err", err)
		}
		return
	}
	if d.tpmIdentity() != nil {
		return
	}
	d.att.mu.Lock()
	defer d.att.mu.Unlock()
	if time.Since(d.att.lastReport) < healthReportEvery {
		return
	}
	if err := d.sendHealthReportLocked(ctx); err != nil && ctx.Err() == nil {
		d.log.Warn("sending the signed health report", "err", err)
	}
}

// attestRequested answers an admin's request to attest now.
func (d *daemon) attestRequested(ctx context.Context) error {
	if d.tpmIdentity() == nil {
		return errors.New("this device has no TPM")
	}
	nonce, err := d.currentClient().AttestNonce(ctx)
	if err != nil {
		return err
	}
	return d.attest(ctx, nonce, "requested")
}

// renewTPM renews the certificate of a TPM identity for the same TPM key:
// the key cannot leave the TPM, and a new one would not be certified by
// the attestation key the server knows.
func (d *daemon) renewTPM(ctx context.Context, tid *identity.TPM) error {
	key, ok := tid.Signer().(*tpmdev.Key)
	if !ok {
		return errors.New("renewal: the TPM identity's signer is not a TPM key")
	}
	csr, err := deviceclient.NewCSR(key)
	if err != nil {
		return err
	}
	resp, err := d.currentClient().Renew(ctx, csr)
	if err != nil {
		return err
	}
	certPEM := certOnly(resp.Certificate)
	id, err := identity.NewTPMWithAK(key, tid.AK(), certPEM)
	if err != nil {
		return err
	}
	d.mu.Lock()
	c, err := newClient(d.st.Server, d.caPEM, id)
	d.mu.Unlock()
	if err != nil {
		return err
	}
	if err := state.Commit(d.dir, []state.File{{Name: state.CertFile, Data: certPEM, Mode: 0o644}}); err != nil {
		c.Close()
		return err
	}
	d.mu.Lock()
	d.id = id // shares the key and AK with the identity it replaces
	d.certStamp = stampOf(filepath.Join(d.dir, state.CertFile))
	d.swapClientLocked(c)
	d.lastRenewal = time.Now()
	d.renewFails, d.renewAfter = 0, time.Time{}
	d.mu.Unlock()
	d.log.Info("device certificate renewed (TPM key)", "serial", id.Certificate().Leaf.SerialNumber.Text(16), "not_after", id.Certificate().Leaf.NotAfter)
	return nil
}
