// Package forward sends the agent's security event journal to the server
// (Code of Practice 10.3): it reads the records the server has not yet
// acknowledged, sends them in batches over the device API, and calls
// journal Ack with what the server reports it holds durably, so that only
// acknowledged records are ever deleted. Failures are retried with
// exponential backoff and jitter, and every send is paced by a token
// bucket (Config.Rate records/s), so that a fleet coming back from an
// outage replays its backlog without flooding the server.
//
// It also keeps the device's clock offset against the server (10.4), see
// Clock.
//
// A Forwarder is safe for concurrent use; Run must be called once.
package forward

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent/journal"
	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/deviceclient"
)

// SendFunc sends one batch to the server (deviceclient.Client.SendEvents
// of the current client).
type SendFunc func(ctx context.Context, b *api.EventBatch) (*api.EventBatchResponse, error)

// Config configures a Forwarder. Zero values are the defaults given.
type Config struct {
	// Journal is the journal to forward. Required.
	Journal *journal.Journal
	// Send sends a batch. Required.
	Send SendFunc
	// Signer, when set, returns the device key to sign journal
	// checkpoints with (an ECDSA key; the server verifies it against the
	// device certificate). Nil: no checkpoints are sent.
	Signer func() crypto.Signer
	// CheckpointEvery is how often a signed checkpoint goes with a batch;
	// zero means 10 minutes.
	CheckpointEvery time.Duration
	// MaxRecords bounds a batch; zero means api.MaxEventBatch (500).
	MaxRecords int
	// MaxBytes bounds a batch's records; zero means
	// api.MaxEventBatchBytes (1 MiB).
	MaxBytes int
	// Rate is the most records per second sent, which paces the replay of
	// a backlog; zero means 2,000.
	Rate float64
	// RetryMin is the first retry delay after a failure; zero means 1 s.
	// Delays double per failure up to RetryMax (zero: 5 min), each drawn
	// uniformly from the upper half.
	RetryMin, RetryMax time.Duration
	// Poll is how often the journal is checked for new records when
	// nothing called Notify; zero means 5 s.
	Poll time.Duration
	// Logger receives warnings; nil discards them.
	Logger *slog.Logger
}

// Stats describes the forwarder's progress.
type Stats struct {
	AckedSeq    uint64    `json:"acked_seq"`
	LastSeq     uint64    `json:"last_seq"`
	Forwarded   uint64    `json:"forwarded"` // records acknowledged since start
	LastSuccess time.Time `json:"last_success,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	Failures    int       `json:"consecutive_failures"`
	// Skipped counts records the server refused for good (invalid or
	// altered), which were passed over; the server records each as a gap.
	Skipped uint64 `json:"skipped"`
}

// Forwarder forwards a journal.
type Forwarder struct {
	cfg  Config
	log  *slog.Logger
	wake chan struct{}

	mu     sync.Mutex
	stats  Stats
	cp     *journal.Checkpoint // signed, not yet delivered
	cpAt   time.Time
	tokens float64
	tokAt  time.Time
	limit  int // when set, the next batch holds at most this many records
}

// New returns a forwarder for cfg.
func New(cfg Config) (*Forwarder, error) {
	if cfg.Journal == nil || cfg.Send == nil {
		return nil, errors.New("forward: Journal and Send are required")
	}
	if cfg.MaxRecords <= 0 || cfg.MaxRecords > api.MaxEventBatch {
		cfg.MaxRecords = api.MaxEventBatch
	}
	if cfg.MaxBytes <= 0 || cfg.MaxBytes > api.MaxEventBatchBytes {
		cfg.MaxBytes = api.MaxEventBatchBytes
	}
	if cfg.Rate <= 0 {
		cfg.Rate = 2000
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = time.Second
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 5 * time.Minute
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 5 * time.Second
	}
	if cfg.CheckpointEvery <= 0 {
		cfg.CheckpointEvery = 10 * time.Minute
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &Forwarder{cfg: cfg, log: log, wake: make(chan struct{}, 1)}
	f.tokens = float64(cfg.MaxRecords)
	return f, nil
}

// Notify tells the forwarder that records were appended.
func (f *Forwarder) Notify() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Stats returns the forwarder's progress.
func (f *Forwarder) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.stats
	s.AckedSeq, s.LastSeq = f.cfg.Journal.Acked(), f.cfg.Journal.LastSeq()
	return s
}

// Run forwards until ctx ends.
func (f *Forwarder) Run(ctx context.Context) {
	failures := 0
	for ctx.Err() == nil {
		sent, err := f.sendOne(ctx)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			failures++
			f.mu.Lock()
			f.stats.LastError, f.stats.LastErrorAt, f.stats.Failures = err.Error(), time.Now(), failures
			f.mu.Unlock()
			delay := backoff(f.cfg.RetryMin, f.cfg.RetryMax, failures)
			f.log.Warn("forwarding security events failed; retrying", "err", err, "retry_in", delay.Round(time.Millisecond), "failures", failures)
			if !sleep(ctx, delay, nil) {
				return
			}
		case sent:
			failures = 0
		default:
			// Caught up: wait for new records.
			if !sleep(ctx, f.cfg.Poll, f.wake) {
				return
			}
		}
	}
}

// sendOne sends the next batch, if any, and acks what the server holds.
func (f *Forwarder) sendOne(ctx context.Context) (bool, error) {
	j := f.cfg.Journal
	from := j.Acked() + 1
	if from > j.LastSeq() {
		return false, nil
	}
	max := f.cfg.MaxRecords
	f.mu.Lock()
	if f.limit > 0 {
		max, f.limit = f.limit, 0
	}
	f.mu.Unlock()
	recs, err := j.Read(from, max)
	if err != nil {
		return false, err
	}
	if len(recs) == 0 {
		return false, nil
	}
	b := &api.EventBatch{Records: make([]api.EventRecord, 0, len(recs))}
	size := 0
	for _, r := range recs {
		n := len(r.Event) + len(r.PrevHash) + len(r.Hash) + 64
		if len(b.Records) > 0 && size+n > f.cfg.MaxBytes {
			break
		}
		size += n
		b.Records = append(b.Records, api.EventRecord{Seq: r.Seq, PrevHash: r.PrevHash, Hash: r.Hash, Event: r.Event})
	}
	lo, hi := b.Records[0].Seq, b.Records[len(b.Records)-1].Seq
	cp := f.checkpoint(lo, hi)
	if cp != nil {
		b.Checkpoint = &api.JournalCheckpoint{DeviceID: cp.DeviceID, Seq: cp.Seq, Hash: cp.Hash, Time: cp.Time, Signature: cp.Signature}
	}
	if err := f.wait(ctx, len(b.Records)); err != nil {
		return false, err
	}
	resp, err := f.cfg.Send(ctx, b)
	var de *deviceclient.Error
	if cp != nil && errors.As(err, &de) && de.Code == "bad_checkpoint" {
		// Signed with a key the server no longer knows (the certificate
		// was renewed): drop it, the next one will be signed anew.
		f.log.Warn("the server refused a journal checkpoint; sending without it", "seq", cp.Seq, "err", err)
		f.mu.Lock()
		f.cp = nil
		f.mu.Unlock()
		b.Checkpoint = nil
		resp, err = f.cfg.Send(ctx, b)
	}
	if err != nil {
		if i, ok := refusedRecord(err); ok && i < len(b.Records) {
			return f.passOver(b, i, err)
		}
		return false, err
	}
	ack := min(resp.AckedSeq, hi)
	if ack < lo {
		return false, fmt.Errorf("forward: the server acknowledged up to %d, below the batch's first seq %d", resp.AckedSeq, lo)
	}
	if err := j.Ack(ack); err != nil {
		return false, err
	}
	f.mu.Lock()
	if cp != nil && f.cp == cp && cp.Seq <= ack {
		f.cp = nil
	}
	f.stats.Forwarded += ack - lo + 1
	f.stats.LastSuccess, f.stats.Failures = time.Now(), 0
	f.mu.Unlock()
	for _, typ := range resp.Raised {
		f.log.Warn("the server raised a journal event about this device", "type", typ, "batch_from", lo, "batch_to", hi)
	}
	return true, nil
}

// refusedRecord reports which record of a batch the server refused for
// good: an event that is not valid (invalid_event) or a record that does
// not match its hash (hash_mismatch), named records[i] in the answer.
func refusedRecord(err error) (int, bool) {
	var de *deviceclient.Error
	if !errors.As(err, &de) || de.Status != 400 || de.Code != "invalid_event" && de.Code != "hash_mismatch" {
		return 0, false
	}
	var i int
	if _, err := fmt.Sscanf(de.Message, "records[%d]", &i); err != nil || i < 0 {
		return 0, false
	}
	return i, true
}

// passOver handles a batch whose record i the server refuses for good:
// the records before it go in the next batch; the record itself is passed
// over (acknowledged locally), so that one bad record does not hold up every
// later one. Nothing is lost silently: the server sees the seq missing and
// stores a journal.gap event, and the agent logs it.
func (f *Forwarder) passOver(b *api.EventBatch, i int, err error) (bool, error) {
	if i > 0 {
		f.mu.Lock()
		f.limit = i
		f.mu.Unlock()
		return true, nil
	}
	seq := b.Records[0].Seq
	f.log.Error("the server refuses a journal record for good; passing over it (the server records the gap)", "seq", seq, "err", err)
	if err := f.cfg.Journal.Ack(seq); err != nil {
		return false, err
	}
	f.mu.Lock()
	f.stats.Skipped++
	f.mu.Unlock()
	return true, nil
}

// checkpoint returns the signed checkpoint to send with the batch [lo,
// hi], signing a new one when one is due.
func (f *Forwarder) checkpoint(lo, hi uint64) *journal.Checkpoint {
	if f.cfg.Signer == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cp == nil && time.Since(f.cpAt) >= f.cfg.CheckpointEvery {
		f.cpAt = time.Now()
		if s := f.cfg.Signer(); s != nil {
			cp, err := f.cfg.Journal.Checkpoint(s)
			if err != nil {
				f.log.Warn("signing a journal checkpoint", "err", err)
			} else {
				f.cp = &cp
			}
		}
	}
	if f.cp != nil && f.cp.Seq >= lo && f.cp.Seq <= hi {
		return f.cp
	}
	if f.cp != nil && f.cp.Seq < lo {
		f.cp = nil // its records went without it; sign a newer one next time
		f.cpAt = time.Time{}
	}
	return nil
}

// wait takes n tokens from the bucket (rate Config.Rate, burst one full
// batch), sleeping until they are there.
func (f *Forwarder) wait(ctx context.Context, n int) error {
	f.mu.Lock()
	now := time.Now()
	if !f.tokAt.IsZero() {
		f.tokens = min(f.tokens+now.Sub(f.tokAt).Seconds()*f.cfg.Rate, float64(f.cfg.MaxRecords))
	}
	f.tokAt = now
	f.tokens -= float64(n)
	deficit := -f.tokens
	f.mu.Unlock()
	if deficit <= 0 {
		return nil
	}
	if !sleep(ctx, time.Duration(deficit/f.cfg.Rate*float64(time.Second)), nil) {
		return ctx.Err()
	}
	return nil
}

// backoff is the delay before retry n (1-based): min doubled per failure,
// capped at max, drawn uniformly from its upper half.
func backoff(lo, hi time.Duration, n int) time.Duration {
	d := hi
	if n < 30 {
		if b := lo << (n - 1); b > 0 && b < d {
			d = b
		}
	}
	half := int64(d) / 2
	return time.Duration(half + rand.Int64N(half+1))
}

// sleep waits d, or until wake fires; false when ctx ended.
func sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-wake:
	}
	return true
}
