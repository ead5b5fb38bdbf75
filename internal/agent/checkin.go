package agent

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent/state"
	"github.com/bulwark-iot/bulwark/internal/api"
)

// checkinLoop checks in at the current interval, sooner when asked, later
// after failures, and hourly once the device is revoked.
func (d *daemon) checkinLoop(ctx context.Context) {
	failures := 0
	for {
		var delay time.Duration
		if ok := d.checkin(ctx); ok {
			failures = 0
			d.mu.Lock()
			delay = jitter(d.effectiveIntervalLocked())
			d.mu.Unlock()
			if d.acks.len() > 0 {
				// More acks than one check-in carries, or acks made
				// from this answer's commands: deliver them now.
				d.triggerCheckin()
			}
		} else {
			if ctx.Err() != nil {
				return
			}
			failures++
			delay = d.backoff(failures)
			if revoked, _ := d.isRevoked(); revoked {
				delay = d.cfg.RevokedRetry
			}
		}
		t := time.NewTimer(delay)
		if revoked, _ := d.isRevoked(); revoked {
			select {
			case <-ctx.Done():
			case <-t.C:
			}
		} else {
			select {
			case <-ctx.Done():
			case <-t.C:
			case <-d.checkinNow:
			}
		}
		t.Stop()
		if ctx.Err() != nil {
			return
		}
	}
}

// checkin performs one check-in, renewing the certificate first when it is
// due, and reports whether the check-in succeeded.
func (d *daemon) checkin(ctx context.Context) bool {
	if d.identityChangedOnDisk() {
		d.reloadIdentity()
	}
	d.renew(ctx, false)

	req := &api.CheckinRequest{
		Inventory: d.inventory(),
		Health:    d.Health(),
		Acks:      d.acks.batch(api.MaxAcks),
	}
	start := time.Now()
	resp, err := d.currentClient().Checkin(ctx, req)
	if err != nil {
		if ctx.Err() != nil {
			return false
		}
		d.checkinFailed(ctx, start, err)
		return false
	}
	d.acks.remove(req.Acks)
	if len(req.Acks) > 0 {
		select {
		case d.acksDelivered <- struct{}{}:
		default:
		}
	}

	d.health.recordClock(start, time.Now(), resp.ServerTime)
	d.observeClock(start, resp.ServerTime)
	d.mu.Lock()
	d.lastAttempt, d.lastSuccess, d.lastResult = start, time.Now(), "ok"
	if d.revoked {
		d.log.Info("server accepts the device again; leaving revoked state")
	}
	d.setRevokedLocked(false)
	if resp.CheckinInterval > 0 {
		d.interval = clampInterval(time.Duration(resp.CheckinInterval) * time.Second)
	}
	d.mu.Unlock()
	d.log.Debug("checked in", "acks", len(req.Acks), "commands", len(resp.Commands), "renew", resp.RenewCertificate)

	if d.iocs != nil {
		d.iocs.hint(resp.IoCVersion)
	}
	for _, c := range resp.Commands {
		d.handle(c, "checkin")
	}
	if resp.RenewCertificate {
		d.renew(ctx, true)
	}
	if d.updates != nil {
		d.updates.flush(ctx)
		if resp.Update != nil {
			d.updates.handle(ctx, resp.Update)
		}
	}
	d.afterCheckin(ctx, resp)
	return true
}

func (d *daemon) checkinFailed(ctx context.Context, at time.Time, err error) {
	status, code := serverError(err)
	d.mu.Lock()
	d.lastAttempt, d.lastResult = at, "failed"
	d.lastErr, d.lastErrAt = err.Error(), time.Now()
	wasRevoked := d.revoked
	if status == http.StatusForbidden && code == codeRevoked {
		d.setRevokedLocked(true)
	}
	d.mu.Unlock()

	switch advice, isID := identityProblem(err); {
	case status == http.StatusForbidden && code == codeRevoked:
		if !wasRevoked {
			d.log.Error("the server has revoked this device; check-ins stop and are retried hourly",
				"err", err, "retry", d.cfg.RevokedRetry)
		}
		d.reloadIdentity()
	case isID:
		if d.reloadIdentity() {
			d.triggerCheckin()
			return
		}
		d.log.Error("check-in refused: "+advice, "err", err)
	case code == codeRateLimited:
		d.log.Warn("check-in rate limited by the server; backing off", "err", err)
	case code == codeBadRequest:
		d.log.Error("server rejected the check-in as malformed", "err", err)
	default:
		d.log.Warn("check-in failed", "err", err)
	}
}

// ackQueue holds command acknowledgements until a check-in delivers them,
// mirrored in acks.json so that a restart does not lose them.
type ackQueue struct {
	dir  string
	log  *slog.Logger
	mu   sync.Mutex
	acks []api.CommandAck
}

// maxPendingAcks bounds memory and the acks file if the server stays away.
const maxPendingAcks = 8192

func (q *ackQueue) add(a api.CommandAck) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, x := range q.acks {
		if x.ID == a.ID {
			return
		}
	}
	if len(q.acks) >= maxPendingAcks {
		q.log.Error("too many undelivered acks; dropping the oldest", "id", q.acks[0].ID)
		q.acks = q.acks[1:]
	}
	q.acks = append(q.acks, a)
	q.saveLocked()
}

func (q *ackQueue) batch(n int) []api.CommandAck {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]api.CommandAck(nil), q.acks[:min(n, len(q.acks))]...)
}

func (q *ackQueue) remove(sent []api.CommandAck) {
	if len(sent) == 0 {
		return
	}
	done := make(map[string]bool, len(sent))
	for _, a := range sent {
		done[a.ID] = true
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	kept := q.acks[:0]
	for _, a := range q.acks {
		if !done[a.ID] {
			kept = append(kept, a)
		}
	}
	clear(q.acks[len(kept):])
	q.acks = kept
	q.saveLocked()
}

func (q *ackQueue) clear() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.acks = nil
	q.saveLocked()
}

func (q *ackQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.acks)
}

func (q *ackQueue) saveLocked() {
	if err := state.SaveAcks(q.dir, q.acks); err != nil {
		q.log.Error("persisting pending acks failed; they are kept in memory", "err", err)
	}
}

// idSet remembers the most recent command IDs, to run each command once
// although both the long poll and check-in answers deliver commands.
type idSet struct {
	mu    sync.Mutex
	max   int
	ids   map[string]struct{}
	order []string
}

func newIDSet(max int) *idSet {
	return &idSet{max: max, ids: make(map[string]struct{}, max)}
}

// add records id and reports whether it is new.
func (s *idSet) add(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.ids[id]; ok {
		return false
	}
	if len(s.order) >= s.max {
		delete(s.ids, s.order[0])
		s.order = s.order[1:]
	}
	s.ids[id] = struct{}{}
	s.order = append(s.order, id)
	return true
}
