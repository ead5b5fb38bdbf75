package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent/identity"
	"github.com/bulwark-iot/bulwark/internal/agent/inventory"
	"github.com/bulwark-iot/bulwark/internal/agent/state"
	"github.com/bulwark-iot/bulwark/internal/agent/tufclient"
	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/deviceclient"
)

// EnrollOptions says how to enrol.
type EnrollOptions struct {
	// StateDir receives the identity; empty means state.DefaultDir.
	StateDir string
	// Server is the server's https:// base URL.
	Server string
	// Token is the enrolment token from the administrator.
	Token string
	// CAPEM is the trust anchor for the server certificate (PEM); it is
	// kept as ca.pem.
	CAPEM []byte
	// Force replaces an existing enrolment. When that enrolment's key is
	// readable, the request carries a proof of possession so that the
	// server can keep the device's identity.
	Force bool
	// Warn, if set, receives problems that do not fail the enrolment.
	Warn func(string)
	// Info, if set, receives progress worth telling the user.
	Info func(string)
	// TPM is "auto" (the kernel's /dev/tpmrm0 when present), "none" (a
	// software key; also the zero value), a device path, or
	// swtpm:HOST:PORT. With a TPM the device key is created inside it and
	// Token may be empty when the server has the TPM's endorsement key
	// registered for zero-touch enrolment.
	TPM string
	// PlatformRoot is prepended to the paths of the boot event log, IMA
	// list and SecureBoot variable read for the enrolment attestation.
	PlatformRoot string
}

// ErrAlreadyEnrolled is returned by Enroll when the state directory holds an
// enrolment and Force is not set.
var ErrAlreadyEnrolled = errors.New("already enrolled")

// Enroll generates a device key (it never leaves the device), sends a CSR
// and the inventory with the token, and stores the issued identity. On any
// failure the state directory keeps what it had.
func Enroll(ctx context.Context, o EnrollOptions) (*state.State, error) {
	if o.StateDir == "" {
		o.StateDir = state.DefaultDir
	}
	if u, err := url.Parse(o.Server); err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("server %q must be an https:// URL", o.Server)
	}
	spec, err := ResolveTPM(o.TPM)
	if err != nil {
		return nil, err
	}
	if o.Token == "" && spec == "" {
		return nil, errors.New("an enrolment token is required")
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(o.CAPEM) {
		return nil, errors.New("the CA file holds no PEM certificate")
	}
	if err := state.EnsureDir(o.StateDir); err != nil {
		return nil, err
	}
	if err := state.Recover(o.StateDir); err != nil {
		return nil, err
	}
	prev, err := state.Load(o.StateDir)
	switch {
	case err == nil && !o.Force:
		return nil, fmt.Errorf("%w as device %s (state dir %s); use --force to enrol again", ErrAlreadyEnrolled, prev.DeviceID, o.StateDir)
	case err != nil && !errors.Is(err, state.ErrNotEnrolled) && !o.Force:
		return nil, err
	}

	if spec != "" {
		return enrollTPM(ctx, o, spec, roots)
	}
	key, err := identity.GenerateKey()
	if err != nil {
		return nil, err
	}
	csrPEM, err := deviceclient.NewCSR(key)
	if err != nil {
		return nil, err
	}
	inv := inventory.Collect(Version())
	req := api.EnrollRequest{
		Token:        o.Token,
		CSR:          csrPEM,
		KeyAssurance: identity.AssuranceSoftware,
		Inventory:    &inv,
	}
	if prev != nil {
		// Prove possession of the old key so the server may keep the
		// device's identity; without the key, enrol as a new device.
		if oldKey, err := identity.LoadKey(o.StateDir); err == nil {
			b, _ := pem.Decode([]byte(csrPEM))
			proof, err := identity.Proof(oldKey, b.Bytes)
			if err != nil {
				return nil, err
			}
			req.PreviousDeviceID, req.PreviousProof = prev.DeviceID, proof
		}
	}

	c, err := deviceclient.New(deviceclient.Config{Server: o.Server, Roots: roots})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	resp, err := c.Enroll(ctx, req)
	if err != nil {
		return nil, err
	}
	if resp.DeviceID == "" || len(resp.DeviceID) > 64 {
		return nil, errors.New("enroll: the server answered without a valid device ID")
	}
	if _, err := identity.NewSoftware(key, []byte(resp.Certificate)); err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	st := &state.State{
		DeviceID:        resp.DeviceID,
		Server:          o.Server,
		EnrolledAt:      time.Now().UTC().Truncate(time.Second),
		KeyAssurance:    identity.AssuranceSoftware,
		CheckinInterval: resp.CheckinInterval,
	}
	files, err := identity.Files(key, certOnly(resp.Certificate))
	if err != nil {
		return nil, err
	}
	files = append(files,
		state.File{Name: state.CAFile, Data: o.CAPEM, Mode: 0o644},
		state.File{Name: state.StateFile, Data: st.Marshal(), Mode: 0o600},
	)
	if err := state.Commit(o.StateDir, files); err != nil {
		return nil, fmt.Errorf("enroll: storing the identity: %w", err)
	}
	if prev != nil && prev.DeviceID != st.DeviceID {
		// Acknowledgements of the old device mean nothing to the new one.
		if err := state.SaveAcks(o.StateDir, nil); err != nil {
			return st, err
		}
	}
	// Embed the update repository's first root now, over the channel just
	// authenticated with the CA given at enrolment: from then on only
	// roots it (or its verified successors) signs are trusted. A device
	// re-enrolling keeps the root it has. Failing here does not undo the
	// enrolment: the update path fetches the root the same way on first use.
	if err := embedTUFRoot(ctx, o.Server, roots, o.StateDir); err != nil && o.Warn != nil {
		o.Warn("could not take the update repository's root at enrolment (it will be fetched at the first update): " + err.Error())
	}
	return st, nil
}

func embedTUFRoot(ctx context.Context, server string, roots *x509.CertPool, dir string) error {
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS13}, ForceAttemptHTTP2: true}}
	defer hc.CloseIdleConnections()
	base := strings.TrimRight(server, "/") + "/tuf"
	_, err := tufclient.Refresh(ctx, tufclient.Config{
		MetadataDir:  filepath.Join(dir, tufDir),
		MetadataURL:  base + "/metadata",
		TargetsURL:   base + "/targets",
		FirstRootURL: base + "/metadata/1.root.json",
		HTTP:         hc,
	})
	return err
}
