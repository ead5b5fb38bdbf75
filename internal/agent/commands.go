package agent

import (
	"context"
	"net/http"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
)

// commandLoop long-polls the server for commands so that they arrive
// within seconds. It pauses while the device is revoked.
func (d *daemon) commandLoop(ctx context.Context) {
	failures, repeats := 0, 0
	for ctx.Err() == nil {
		if revoked, unrevoked := d.isRevoked(); revoked {
			t := time.NewTimer(d.cfg.RevokedRetry)
			select {
			case <-ctx.Done():
			case <-t.C:
			case <-unrevoked:
			}
			t.Stop()
			// A long poll after RevokedRetry doubles as the hourly probe.
		}
		start := time.Now()
		c, pctx, cancel := d.pollClient(ctx)
		cmds, err := c.WaitCommands(pctx, d.cfg.CommandWait)
		cancel()
		if c != d.currentClient() {
			// The identity changed during the poll: drop the
			// connection that carried the old certificate.
			c.Close()
			if err != nil {
				continue
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			status, code := serverError(err)
			if status == http.StatusForbidden && code == codeRevoked {
				d.mu.Lock()
				wasRevoked := d.revoked
				d.setRevokedLocked(true)
				d.mu.Unlock()
				if !wasRevoked {
					d.log.Error("the server has revoked this device; check-ins stop and are retried hourly",
						"err", err, "retry", d.cfg.RevokedRetry)
				}
				continue
			}
			if _, isID := identityProblem(err); isID {
				// The check-in loop reports and handles these.
				failures = max(failures, 6)
			}
			delay := d.backoff(failures)
			d.log.Warn("command poll failed", "err", err, "retry_in", delay.Round(time.Millisecond))
			sleep(ctx, delay)
			continue
		}
		failures = 0
		fresh := 0
		for _, c := range cmds {
			if d.handle(c, "poll") {
				fresh++
			}
		}
		// The server answers at once while a delivered command is not yet
		// acknowledged. Rather than spin, wait for the next check-in to
		// deliver the acks, or for a growing delay if check-ins fail.
		if fresh > 0 || time.Since(start) >= time.Second {
			repeats = 0
			continue
		}
		repeats++
		t := time.NewTimer(d.backoff(repeats))
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-d.acksDelivered:
		}
		t.Stop()
	}
}

// handle runs a command once, queues its acknowledgement and asks for a
// check-in to deliver it. It reports whether the command was new.
func (d *daemon) handle(c api.Command, via string) bool {
	if c.ID == "" || len(c.ID) > 64 {
		// It could not be acknowledged: the server would refuse the ack.
		d.log.Warn("ignoring command with a bad id", "kind", c.Kind, "via", via)
		return false
	}
	if !d.seen.add(c.ID) {
		return false
	}
	ack := api.CommandAck{ID: c.ID, Status: "done"}
	switch c.Kind {
	case "ping":
		ack.Detail = "pong"
	case "checkin":
		ack.Detail = "check-in triggered"
	case "attest":
		if d.tpmIdentity() == nil {
			ack.Status, ack.Detail = "failed", "this device has no TPM"
			break
		}
		ack.Detail = "attesting"
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if err := d.attestRequested(ctx); err != nil {
				d.log.Warn("requested attestation failed to complete", "err", err)
			}
		}()
	default:
		ack.Status, ack.Detail = "failed", "unsupported command kind"
	}
	d.log.Info("command", "id", c.ID, "kind", c.Kind, "via", via, "status", ack.Status)
	d.acks.add(ack)
	d.triggerCheckin()
	return true
}
