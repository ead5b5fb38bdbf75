package forward_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent/forward"
	"github.com/bulwark-iot/bulwark/internal/agent/journal"
	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/deviceclient"
	"github.com/bulwark-iot/bulwark/internal/events"
)

// fakeServer holds what it is sent, acknowledging up to ackLimit when set,
// and failing the first fail sends.
type fakeServer struct {
	mu       sync.Mutex
	last     uint64
	batches  []int
	bytes    []int
	fail     int
	ackLimit uint64
	at       []time.Time
}

func (f *fakeServer) send(ctx context.Context, b *api.EventBatch) (*api.EventBatchResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.at = append(f.at, time.Now())
	if f.fail > 0 {
		f.fail--
		return nil, errors.New("fake: unavailable")
	}
	n := 0
	for _, r := range b.Records {
		n += len(r.Event)
		if r.Seq == f.last+1 && (f.ackLimit == 0 || r.Seq <= f.ackLimit) {
			f.last = r.Seq
		}
	}
	f.batches = append(f.batches, len(b.Records))
	f.bytes = append(f.bytes, n)
	return &api.EventBatchResponse{AckedSeq: f.last}, nil
}

func newJournal(t *testing.T, n int, detail int) *journal.Journal {
	t.Helper()
	j, err := journal.Open(t.TempDir(), journal.Options{DeviceID: "dev-1", NoSync: true, MaxBytes: 256 << 20, SegmentBytes: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	for i := 0; i < n; i++ {
		ev, _ := events.New(events.TypePolicyDenial, "dev-1", events.SeverityHigh, time.Now(),
			events.PolicyDenial{Policy: "p", Action: "exec", Reason: strings.Repeat("r", detail)})
		if _, err := j.Append(ev); err != nil {
			t.Fatal(err)
		}
	}
	return j
}

func run(t *testing.T, cfg forward.Config, until func() bool) {
	t.Helper()
	f, err := forward.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { f.Run(ctx) })
	waitFor(t, "the forwarder", 30*time.Second, until)
	cancel()
	wg.Wait()
}

func TestForwardBatchLimitsAndPartialAck(t *testing.T) {
	j := newJournal(t, 1300, 3000) // ~3.2 KB events: 1 MiB holds ~320
	fs := &fakeServer{ackLimit: 1000}
	run(t, forward.Config{Journal: j, Send: fs.send, Rate: 1e6, Poll: 10 * time.Millisecond},
		func() bool { return j.Acked() == 1000 })
	time.Sleep(50 * time.Millisecond)
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for i, n := range fs.batches {
		if n > api.MaxEventBatch || fs.bytes[i] > api.MaxEventBatchBytes || n == 0 {
			t.Fatalf("batch %d: %d records, %d bytes", i, n, fs.bytes[i])
		}
	}
	if fs.batches[0] == api.MaxEventBatch {
		t.Fatalf("the 1 MiB bound did not limit the first batch (%d records)", fs.batches[0])
	}
	// Only what the server acknowledged was acked in the journal, and
	// the unacknowledged records are still there to send.
	if j.Acked() != 1000 || j.LastSeq() != 1300 {
		t.Fatalf("acked %d of %d", j.Acked(), j.LastSeq())
	}
	recs, err := j.Read(1001, 1)
	if err != nil || len(recs) != 1 || recs[0].Seq != 1001 {
		t.Fatalf("record 1001 after partial ack: %v %v", recs, err)
	}
}

func TestForwardRetriesWithBackoff(t *testing.T) {
	j := newJournal(t, 10, 10)
	fs := &fakeServer{fail: 4}
	run(t, forward.Config{Journal: j, Send: fs.send, RetryMin: 20 * time.Millisecond, RetryMax: time.Second},
		func() bool { return j.Acked() == 10 })
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if len(fs.at) != 5 {
		t.Fatalf("%d sends, want 4 failures and a success", len(fs.at))
	}
	// Delays double: each from the upper half of 20, 40, 80, 160 ms.
	for i := 1; i < len(fs.at); i++ {
		got, min := fs.at[i].Sub(fs.at[i-1]), (20*time.Millisecond<<(i-1))/2
		if got < min {
			t.Errorf("retry %d after %v, want at least %v", i, got, min)
		}
	}
}

func TestForwardReplayIsRateLimited(t *testing.T) {
	j := newJournal(t, 3000, 10)
	fs := &fakeServer{}
	start := time.Now()
	run(t, forward.Config{Journal: j, Send: fs.send, Rate: 5000}, func() bool { return j.Acked() == 3000 })
	// One batch of burst, then 2,500 records at 5,000/s.
	if d := time.Since(start); d < 450*time.Millisecond {
		t.Fatalf("3,000 records went out in %v at 5,000/s", d)
	}
}

func TestClockOffset(t *testing.T) {
	var recorded []time.Duration
	c := &forward.Clock{Record: func(off, th time.Duration) {
		if th != forward.DefaultClockThreshold {
			t.Errorf("threshold %v", th)
		}
		recorded = append(recorded, off)
	}}
	if _, _, _, ok := c.Offset(); ok {
		t.Fatal("offset before any measurement")
	}
	t0 := time.Date(2026, 11, 26, 20, 0, 0, 0, time.UTC)
	// Request sent at t0, answered 2 s later; the server said t0+4s: the
	// midpoint is t0+1s, so the device is 3 s behind: below the threshold.
	c.Observe(t0, t0.Add(2*time.Second), t0.Add(4*time.Second))
	if off, rtt, _, ok := c.Offset(); !ok || off != 3*time.Second || rtt != 2*time.Second {
		t.Fatalf("offset = %v over %v", off, rtt)
	}
	// 93 s ahead of the server: recorded once, not at every check-in.
	for i := 0; i < 3; i++ {
		at := t0.Add(time.Duration(i) * time.Minute)
		c.Observe(at, at, at.Add(-93*time.Second))
	}
	// Much further off: recorded again at once; an hour later: again.
	c.Observe(t0.Add(5*time.Minute), t0.Add(5*time.Minute), t0.Add(5*time.Minute-200*time.Second))
	c.Observe(t0.Add(2*time.Hour), t0.Add(2*time.Hour), t0.Add(2*time.Hour-200*time.Second))
	if len(recorded) != 3 || recorded[0] != -93*time.Second || recorded[1] != -200*time.Second {
		t.Fatalf("recorded %v", recorded)
	}
}

// refusingServer refuses the records with the given seqs as invalid, the
// way the server names them, and stores the rest.
type refusingServer struct {
	fakeServer
	refuse map[uint64]bool
	stored map[uint64]int
}

func (r *refusingServer) send(ctx context.Context, b *api.EventBatch) (*api.EventBatchResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, rec := range b.Records {
		if r.refuse[rec.Seq] {
			return nil, &deviceclient.Error{Status: 400, Code: "invalid_event", Message: fmt.Sprintf("records[%d].event: unknown type \"x\"", i)}
		}
	}
	for _, rec := range b.Records {
		r.stored[rec.Seq]++
		r.last = max(r.last, rec.Seq)
	}
	return &api.EventBatchResponse{AckedSeq: r.last}, nil
}

func TestForwardPassesOverRefusedRecords(t *testing.T) {
	j := newJournal(t, 30, 10)
	rs := &refusingServer{refuse: map[uint64]bool{1: true, 7: true, 8: true, 20: true}, stored: map[uint64]int{}}
	cfg := forward.Config{Journal: j, Send: rs.send, Rate: 1e6, MaxRecords: 10, RetryMin: time.Hour}
	f, err := forward.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { f.Run(ctx) })
	waitFor(t, "every record acknowledged or passed over", 10*time.Second, func() bool { return j.Acked() == 30 })
	cancel()
	wg.Wait()
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for seq := uint64(1); seq <= 30; seq++ {
		want := 1
		if rs.refuse[seq] {
			want = 0
		}
		if rs.stored[seq] != want {
			t.Errorf("record %d stored %d times, want %d", seq, rs.stored[seq], want)
		}
	}
	if st := f.Stats(); st.Skipped != 4 {
		t.Errorf("skipped %d, want 4", st.Skipped)
	}
}
