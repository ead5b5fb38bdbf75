package agent

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent/identity"
	"github.com/bulwark-iot/bulwark/internal/agent/inventory"
	"github.com/bulwark-iot/bulwark/internal/agent/state"
	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/deviceclient"
	tpmdev "github.com/bulwark-iot/bulwark/internal/tpm"
)

// enrollTPM enrols with a device key created inside the TPM named by spec
// (fixedTPM: it never leaves it) and an attestation key. The server
// checks the TPM's endorsement key (and its certificate), the AK's
// creation and the AK's certification of the device key, then challenges
// the device with a credential only this TPM can activate. Once enrolled,
// the device attests its boot state with the challenge's nonce.
func enrollTPM(ctx context.Context, o EnrollOptions, spec string, roots *x509.CertPool) (*state.State, error) {
	dev, err := tpmdev.Open(spec)
	if err != nil {
		return nil, err
	}
	defer dev.Close()
	key, err := dev.CreateDeviceKey()
	if err != nil {
		return nil, err
	}
	ak, err := dev.CreateAK()
	if err != nil {
		key.Close()
		return nil, err
	}
	closeKeys := func() { key.Close(); ak.Close() }
	enr, err := dev.Enrollment(ak, key)
	if err != nil {
		closeKeys()
		return nil, err
	}
	csrPEM, err := deviceclient.NewCSR(key)
	if err != nil {
		closeKeys()
		return nil, err
	}
	inv := inventory.Collect(Version())
	c, err := deviceclient.New(deviceclient.Config{Server: o.Server, Roots: roots})
	if err != nil {
		closeKeys()
		return nil, err
	}
	defer c.Close()
	resp, err := c.Enroll(ctx, api.EnrollRequest{Token: o.Token, CSR: csrPEM, TPM: enr, Inventory: &inv})
	if err != nil {
		closeKeys()
		return nil, err
	}
	ch := resp.Activation
	if ch == nil {
		closeKeys()
		return nil, errors.New("enroll: the server did not answer the TPM enrolment with a credential challenge")
	}
	secret, err := ak.ActivateCredential(ch.Credential, ch.Secret)
	if err != nil {
		closeKeys()
		return nil, fmt.Errorf("enroll: activating the server's credential: %w", err)
	}
	fin, err := c.Enroll(ctx, api.EnrollRequest{CSR: csrPEM, Activation: &api.ActivationAnswer{Session: ch.Session, Secret: secret}})
	if err != nil {
		closeKeys()
		return nil, err
	}
	if fin.DeviceID == "" || len(fin.DeviceID) > 64 {
		closeKeys()
		return nil, errors.New("enroll: the server answered without a valid device ID")
	}
	certPEM := certOnly(fin.Certificate)
	id, err := identity.NewTPMWithAK(key, ak, certPEM)
	if err != nil {
		closeKeys()
		return nil, fmt.Errorf("enroll: %w", err)
	}
	defer id.Close()
	st := &state.State{
		DeviceID:        fin.DeviceID,
		Server:          o.Server,
		EnrolledAt:      time.Now().UTC().Truncate(time.Second),
		KeyAssurance:    identity.AssuranceTPM,
		CheckinInterval: fin.CheckinInterval,
		TPM:             spec,
	}
	files := append(identity.TPMFiles(key, certPEM), identity.TPMAKStateFile(ak),
		state.File{Name: state.CAFile, Data: o.CAPEM, Mode: 0o644},
		state.File{Name: state.StateFile, Data: st.Marshal(), Mode: 0o600},
	)
	if err := state.Commit(o.StateDir, files); err != nil {
		return nil, fmt.Errorf("enroll: storing the identity: %w", err)
	}
	if err := state.SaveAcks(o.StateDir, nil); err != nil {
		return st, err
	}
	// The enrolment attestation: the boot state the server keeps as the
	// baseline for an administrator to approve.
	c.SetCertificate(id.Certificate())
	plat := tpmdev.Platform{Root: o.PlatformRoot}
	pcrs := bootPCRs
	if plat.IMALog() != nil {
		pcrs = append(append([]int(nil), bootPCRs...), 10)
	}
	if ev, err := ak.Quote(ch.Nonce, pcrs); err != nil {
		o.warn("could not quote the boot state at enrolment (the device attests at its first check-in): " + err.Error())
	} else {
		plat.AddTo(ev)
		ev.Reason = "enrolment"
		if res, err := c.Attest(ctx, ev); err != nil {
			o.warn("the enrolment attestation was not accepted (the device attests at its first check-in): " + err.Error())
		} else {
			if o.Info != nil {
				o.Info("enrolment attestation: " + res.Status + " (the boot state is kept as this device's baseline until an administrator approves it)")
			}
			for _, p := range res.Problems {
				o.warn("attestation: " + p)
			}
		}
	}
	if err := embedTUFRoot(ctx, o.Server, roots, o.StateDir); err != nil {
		o.warn("could not take the update repository's root at enrolment (it will be fetched at the first update): " + err.Error())
	}
	return st, nil
}

func (o EnrollOptions) warn(msg string) {
	if o.Warn != nil {
		o.Warn(msg)
	}
}
