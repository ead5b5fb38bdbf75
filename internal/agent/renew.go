package agent

import (
	"context"
	"encoding/pem"
	"path/filepath"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent/identity"
	"github.com/bulwark-iot/bulwark/internal/agent/state"
	"github.com/bulwark-iot/bulwark/internal/deviceclient"
)

// renew replaces the device key and certificate when less than a third of
// the certificate's lifetime remains, or at once when forced (the server
// asked). Nothing on disk or in use changes unless the server issued a
// certificate for the new key and both files were committed: a failed
// renewal leaves the working identity as it was.
func (d *daemon) renew(ctx context.Context, forced bool) {
	now := time.Now()
	d.mu.Lock()
	leaf := d.id.Certificate().Leaf
	due := identity.RenewalDue(leaf, now) && !now.Before(d.renewAfter)
	d.mu.Unlock()
	if !forced && !due {
		return
	}
	d.log.Info("renewing the device certificate", "forced", forced, "not_after", leaf.NotAfter)
	if err := d.renewOnce(ctx); err != nil {
		if ctx.Err() != nil {
			return
		}
		d.mu.Lock()
		d.renewFails++
		wait := min(time.Minute<<min(d.renewFails-1, 10), time.Hour)
		d.renewAfter = time.Now().Add(wait)
		d.lastErr, d.lastErrAt = err.Error(), time.Now()
		d.mu.Unlock()
		msg := "certificate renewal failed; keeping the current identity"
		if advice, ok := identityProblem(err); ok {
			msg += ": " + advice
		}
		d.log.Error(msg, "err", err, "retry_after", wait)
		return
	}
	d.recordRenewal(leaf)
}

func (d *daemon) renewOnce(ctx context.Context) error {
	if tid := d.tpmIdentity(); tid != nil {
		return d.renewTPM(ctx, tid)
	}
	key, err := identity.GenerateKey()
	if err != nil {
		return err
	}
	csr, err := deviceclient.NewCSR(key)
	if err != nil {
		return err
	}
	resp, err := d.currentClient().Renew(ctx, csr)
	if err != nil {
		return err
	}
	id, err := identity.NewSoftware(key, []byte(resp.Certificate))
	if err != nil {
		return err
	}
	files, err := identity.Files(key, certOnly(resp.Certificate))
	if err != nil {
		return err
	}
	d.mu.Lock()
	c, err := newClient(d.st.Server, d.caPEM, id)
	d.mu.Unlock()
	if err != nil {
		return err
	}
	if err := state.Commit(d.dir, files); err != nil {
		c.Close()
		return err
	}
	d.mu.Lock()
	d.id = id
	d.certStamp = stampOf(filepath.Join(d.dir, state.CertFile))
	d.swapClientLocked(c)
	d.lastRenewal = time.Now()
	d.renewFails, d.renewAfter = 0, time.Time{}
	d.mu.Unlock()
	d.log.Info("device certificate renewed", "serial", id.Certificate().Leaf.SerialNumber.Text(16),
		"not_after", id.Certificate().Leaf.NotAfter)
	return nil
}

// certOnly keeps the CERTIFICATE blocks of a PEM bundle.
func certOnly(bundle string) []byte {
	var out []byte
	rest := []byte(bundle)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return out
		}
		if b.Type == "CERTIFICATE" {
			out = append(out, pem.EncodeToMemory(&pem.Block{Type: b.Type, Bytes: b.Bytes})...)
		}
	}
}
