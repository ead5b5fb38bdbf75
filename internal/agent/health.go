package agent

import (
	"fmt"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent/identity"
	"github.com/bulwark-iot/bulwark/internal/api"
)

// Health states (api.HealthStates).
const (
	healthOK       = api.HealthHealthy
	healthDegraded = api.HealthDegraded
	healthFailing  = api.HealthUnhealthy
)

// minFreeDisk is the share of free space on the state directory's
// filesystem below which the disk check is degraded.
const minFreeDisk = 0.05

// Health implements localapi.Provider. It is the agent's definition of
// device health (Code of Practice 5.1), available locally (5.2) through
// bulwark-agent health and remotely (5.3) in every check-in:
//
//   - identity: the certificate is valid (failing if expired or not yet
//     valid, or the device is revoked; degraded when renewal is due);
//   - checkin: the last check-in succeeded (degraded if it failed, failing
//     when the server has revoked the device);
//   - disk: at least 5 % free on the state directory's filesystem.
//
// The summary status is the worst of the checks.
func (d *daemon) Health() api.Health {
	now := time.Now()
	d.mu.Lock()
	checks := []api.HealthCheck{
		identityCheck(d.id, d.revoked, now),
		d.checkinCheckLocked(),
	}
	d.mu.Unlock()
	checks = append(checks, diskCheck(d.dir))
	return summarise(checks)
}

func summarise(checks []api.HealthCheck) api.Health {
	return api.SummarizeHealth(checks)
}

func identityCheck(id identity.Identity, revoked bool, now time.Time) api.HealthCheck {
	c := api.HealthCheck{Name: "identity"}
	leaf := id.Certificate().Leaf
	exp := leaf.NotAfter.UTC().Format(time.RFC3339)
	switch {
	case revoked:
		c.Status, c.Detail = healthFailing, "device revoked by the server"
	case now.After(leaf.NotAfter):
		c.Status, c.Detail = healthFailing, "certificate expired at "+exp
	case now.Before(leaf.NotBefore):
		c.Status, c.Detail = healthFailing, "certificate not valid before "+leaf.NotBefore.UTC().Format(time.RFC3339)
	case identity.RenewalDue(leaf, now):
		c.Status, c.Detail = healthDegraded, "certificate expires soon ("+exp+"); renewal due"
	default:
		c.Status, c.Detail = healthOK, fmt.Sprintf("certificate valid until %s (%s key)", exp, id.KeyAssurance())
	}
	return c
}

func (d *daemon) checkinCheckLocked() api.HealthCheck {
	c := api.HealthCheck{Name: "checkin", Status: healthOK}
	switch {
	case d.revoked:
		c.Status, c.Detail = healthFailing, "device revoked by the server"
	case d.lastResult == "":
		c.Detail = "no check-in yet"
	case d.lastResult == "failed":
		c.Status = healthDegraded
		c.Detail = "last check-in failed at " + d.lastAttempt.UTC().Format(time.RFC3339)
		if !d.lastSuccess.IsZero() {
			c.Detail += "; last success " + d.lastSuccess.UTC().Format(time.RFC3339)
		}
	default:
		c.Detail = "last check-in " + d.lastSuccess.UTC().Format(time.RFC3339)
	}
	return c
}

func diskCheck(dir string) api.HealthCheck {
	c := api.HealthCheck{Name: "disk"}
	free, err := freeShare(dir)
	switch {
	case err != nil:
		c.Status, c.Detail = healthDegraded, "cannot measure free space: "+err.Error()
	case free < minFreeDisk:
		c.Status, c.Detail = healthDegraded, fmt.Sprintf("%.1f%% free on the state filesystem", free*100)
	default:
		c.Status, c.Detail = healthOK, fmt.Sprintf("%.1f%% free on the state filesystem", free*100)
	}
	if len(c.Detail) > api.MaxStringLen {
		c.Detail = c.Detail[:api.MaxStringLen]
	}
	return c
}
