package journal

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/events"
)

func testEvent(t testing.TB, i int) *events.Event {
	t.Helper()
	ev, err := events.New(events.TypeAuthLogin, "dev-1", events.SeverityMedium, time.Unix(1_800_000_000+int64(i), 0),
		events.AuthLogin{Activity: "logon", Outcome: "failure", Service: "ssh", User: fmt.Sprintf("user%04d", i)})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func open(t testing.TB, dir string, seg, max int64) *Journal {
	t.Helper()
	j, err := Open(dir, Options{DeviceID: "dev-1", SegmentBytes: seg, MaxBytes: max})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func appendN(t testing.TB, j *Journal, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if _, err := j.Append(testEvent(t, i)); err != nil {
			t.Fatal(err)
		}
	}
}

func segFiles(t testing.TB, dir string) []string {
	m, _ := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	return m
}

func TestAppendReadAckCompaction(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, 2048, 1<<20)
	for i := 1; i <= 100; i++ {
		seq, err := j.Append(testEvent(t, i))
		if err != nil || seq != uint64(i) {
			t.Fatalf("append %d: seq %d, %v", i, seq, err)
		}
	}
	recs, err := j.Read(10, 5)
	if err != nil || len(recs) != 5 || recs[0].Seq != 10 || recs[4].Seq != 14 {
		t.Fatalf("read: %v %+v", err, recs)
	}
	ev, err := events.Decode(recs[0].Event)
	if err != nil || ev.Seq != 10 || ev.Details.(*events.AuthLogin).User != "user0010" {
		t.Fatalf("event: %v %+v", err, ev)
	}
	all, _ := j.Read(1, 1000)
	if len(all) != 100 {
		t.Fatalf("read all: %d", len(all))
	}
	nseg := len(segFiles(t, dir))
	if nseg < 4 {
		t.Fatalf("want several segments, got %d", nseg)
	}
	if err := j.Ack(101); err == nil {
		t.Fatal("ack beyond last seq accepted")
	}
	if err := j.Ack(60); err != nil {
		t.Fatal(err)
	}
	if n := len(segFiles(t, dir)); n >= nseg {
		t.Fatalf("ack did not compact: %d segments, was %d", n, nseg)
	}
	first := j.FirstSeq()
	if first < 2 || first > 61 {
		t.Fatalf("first seq %d after ack of 60", first)
	}
	recs, _ = j.Read(1, 1000)
	if recs[0].Seq != first || recs[len(recs)-1].Seq != 100 {
		t.Fatalf("read after compaction: %d..%d", recs[0].Seq, recs[len(recs)-1].Seq)
	}
	if err := j.Verify(); err != nil {
		t.Fatal(err)
	}
	// Restart: state, chain and ack survive.
	j.Close()
	j = open(t, dir, 2048, 1<<20)
	if j.LastSeq() != 100 || j.Acked() != 60 || j.FirstSeq() != first {
		t.Fatalf("after reopen: last %d acked %d first %d", j.LastSeq(), j.Acked(), j.FirstSeq())
	}
	if seq, err := j.Append(testEvent(t, 101)); err != nil || seq != 101 {
		t.Fatal(seq, err)
	}
	if err := j.Verify(); err != nil {
		t.Fatal(err)
	}
	j.Close()
}

func TestTornWriteTruncatedOnOpen(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, 1<<20, 4<<20)
	appendN(t, j, 1, 10)
	j.Close()
	seg := segFiles(t, dir)[0]
	data, _ := os.ReadFile(seg)
	good := len(data)
	// A crash mid-write leaves part of record 11.
	j = open(t, dir, 1<<20, 4<<20)
	appendN(t, j, 11, 1)
	j.Close()
	data, _ = os.ReadFile(seg)
	os.WriteFile(seg, data[:good+37], 0o600)

	j = open(t, dir, 1<<20, 4<<20)
	defer j.Close()
	if j.LastSeq() != 10 {
		t.Fatalf("last seq %d after torn write, want 10", j.LastSeq())
	}
	if fi, _ := os.Stat(seg); fi.Size() != int64(good) {
		t.Fatalf("segment is %d bytes, want %d", fi.Size(), good)
	}
	if seq, err := j.Append(testEvent(t, 11)); err != nil || seq != 11 {
		t.Fatal(seq, err)
	}
	if err := j.Verify(); err != nil {
		t.Fatal(err)
	}
}

func wantChainError(t *testing.T, err error, seq uint64) {
	t.Helper()
	var ce *ChainError
	if !errors.As(err, &ce) {
		t.Fatalf("want a ChainError at %d, got %v", seq, err)
	}
	if ce.Seq != seq {
		t.Fatalf("first bad seq %d, want %d (%v)", ce.Seq, seq, err)
	}
}

func lines(t *testing.T, path string) [][]byte {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.SplitAfter(data, []byte("\n"))
}

func TestTamperDetection(t *testing.T) {
	setup := func(t *testing.T) (*Journal, string) {
		dir := t.TempDir()
		j := open(t, dir, 1<<20, 4<<20)
		appendN(t, j, 1, 20)
		if err := j.Verify(); err != nil {
			t.Fatal(err)
		}
		return j, segFiles(t, dir)[0]
	}
	t.Run("edit a byte", func(t *testing.T) {
		j, seg := setup(t)
		defer j.Close()
		data, _ := os.ReadFile(seg)
		i := bytes.Index(data, []byte("user0007"))
		data[i+4] = '9'
		os.WriteFile(seg, data, 0o600)
		wantChainError(t, j.Verify(), 7)
	})
	t.Run("delete a record", func(t *testing.T) {
		j, seg := setup(t)
		defer j.Close()
		l := lines(t, seg)
		os.WriteFile(seg, bytes.Join(append(l[:11:11], l[12:]...), nil), 0o600)
		wantChainError(t, j.Verify(), 12)
	})
	t.Run("reorder", func(t *testing.T) {
		j, seg := setup(t)
		defer j.Close()
		l := lines(t, seg)
		l[4], l[5] = l[5], l[4]
		os.WriteFile(seg, bytes.Join(l, nil), 0o600)
		wantChainError(t, j.Verify(), 5)
	})
	t.Run("rewrite a record with a recomputed hash", func(t *testing.T) {
		j, seg := setup(t)
		defer j.Close()
		recs, _ := j.Read(3, 1)
		ev, _ := events.Decode(recs[0].Event)
		ev.Details.(*events.AuthLogin).Outcome = "success"
		b, _ := ev.Marshal()
		forged := fmt.Sprintf(`{"seq":3,"prev_hash":%q,"hash":%q,"event":%s}`+"\n", recs[0].PrevHash, RecordHash(3, recs[0].PrevHash, b), b)
		l := lines(t, seg)
		l[2] = []byte(forged)
		os.WriteFile(seg, bytes.Join(l, nil), 0o600)
		wantChainError(t, j.Verify(), 4) // record 4 no longer chains to 3
	})
	t.Run("delete a segment", func(t *testing.T) {
		dir := t.TempDir()
		j := open(t, dir, 2048, 1<<20)
		defer j.Close()
		appendN(t, j, 1, 30)
		segs := segFiles(t, dir)
		recs, _ := j.Read(1, 1000)
		var secondFirst uint64
		for _, r := range recs {
			if filepath.Base(segs[1]) == segName(r.Seq) {
				secondFirst = r.Seq
			}
		}
		os.Remove(segs[1])
		wantChainError(t, j.Verify(), secondFirst)
		os.Remove(segs[0])
		wantChainError(t, j.Verify(), 1)
	})
	t.Run("truncate the tail, caught by a checkpoint", func(t *testing.T) {
		dir := t.TempDir()
		j := open(t, dir, 1<<20, 4<<20)
		appendN(t, j, 1, 20)
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if _, err := j.Checkpoint(key); err != nil {
			t.Fatal(err)
		}
		j.Close()
		seg := segFiles(t, dir)[0]
		l := lines(t, seg)
		os.WriteFile(seg, bytes.Join(l[:15], nil), 0o600)
		j = open(t, dir, 1<<20, 4<<20)
		defer j.Close()
		wantChainError(t, j.Verify(), 16)
	})
}

func TestOverflowDropsAckedFirstThenRecordsGap(t *testing.T) {
	dir := t.TempDir()
	const seg, max = 2048, 3 * 2048
	j := open(t, dir, seg, max)
	defer j.Close()
	// Fill and acknowledge: overflow only ever drops acked segments.
	appendN(t, j, 1, 10) // ~450-byte records: 10 fit under the cap
	if err := j.Ack(10); err != nil {
		t.Fatal(err)
	}
	appendN(t, j, 11, 8) // fits only if acked segments make room
	recs, _ := j.Read(1, 1000)
	for _, r := range recs {
		ev, _ := events.Decode(r.Event)
		if ev.Type == events.TypeJournalGap {
			t.Fatalf("gap recorded though only acked records were dropped")
		}
	}
	// Now nothing is acked past 30 and the journal keeps growing: the
	// oldest unacked records go, and a gap event says which.
	appendN(t, j, 19, 200)
	recs, _ = j.Read(1, 10000)
	var gaps []*events.JournalGap
	for _, r := range recs {
		ev, err := events.Decode(r.Event)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type == events.TypeJournalGap {
			g := ev.Details.(*events.JournalGap)
			if g.Reason != "overflow" || ev.Severity != "High" {
				t.Fatalf("gap %+v", ev)
			}
			gaps = append(gaps, g)
		}
	}
	if len(gaps) == 0 {
		t.Fatal("unacked records were dropped without a gap event")
	}
	// Every seq from 11 on is either still stored or inside a recorded gap.
	stored := map[uint64]bool{}
	for _, r := range recs {
		stored[r.Seq] = true
	}
	for s := uint64(11); s <= j.LastSeq(); s++ {
		if stored[s] {
			continue
		}
		covered := false
		for _, g := range gaps {
			covered = covered || (g.FromSeq <= s && s <= g.ToSeq)
		}
		if !covered {
			t.Fatalf("seq %d lost silently (gaps %+v)", s, gaps)
		}
	}
	if gaps[0].FromSeq != 11 {
		t.Fatalf("first gap starts at %d, want 11 (the first unacked seq)", gaps[0].FromSeq)
	}
	if recs[0].Seq == 11 {
		t.Fatal("no unacked record was dropped")
	}
	var total int64
	for _, f := range segFiles(t, dir) {
		fi, _ := os.Stat(f)
		total += fi.Size()
	}
	if total > max {
		t.Fatalf("journal uses %d bytes, cap %d", total, max)
	}
	if err := j.Verify(); err != nil {
		t.Fatal(err)
	}
}

func TestSignedCheckpoint(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, 1<<20, 4<<20)
	defer j.Close()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := j.Checkpoint(key); err == nil {
		t.Fatal("checkpoint of an empty journal")
	}
	appendN(t, j, 1, 5)
	cp, err := j.Checkpoint(key)
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := j.Read(5, 1)
	if cp.Seq != 5 || cp.Hash != recs[0].Hash || cp.DeviceID != "dev-1" {
		t.Fatalf("checkpoint %+v", cp)
	}
	stored, err := j.Checkpoints()
	if err != nil || len(stored) != 1 {
		t.Fatal(stored, err)
	}
	if err := VerifyCheckpoint(&key.PublicKey, stored[0]); err != nil {
		t.Fatal(err)
	}
	if err := j.VerifyCheckpoints(&key.PublicKey); err != nil {
		t.Fatal(err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err := VerifyCheckpoint(&other.PublicKey, stored[0]); err == nil {
		t.Fatal("verified with the wrong key")
	}
	forged := stored[0]
	forged.Seq = 4
	if err := VerifyCheckpoint(&key.PublicKey, forged); err == nil {
		t.Fatal("forged seq verified")
	}
	forged = stored[0]
	forged.Hash = recs[0].PrevHash
	if err := VerifyCheckpoint(&key.PublicKey, forged); err == nil {
		t.Fatal("forged hash verified")
	}
	forged = stored[0]
	forged.Signature = append([]byte{}, forged.Signature...)
	forged.Signature[len(forged.Signature)-1] ^= 1
	if err := VerifyCheckpoint(&key.PublicKey, forged); err == nil {
		t.Fatal("altered signature verified")
	}
	if err := j.Verify(); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkAppend(b *testing.B) {
	for _, sync := range []bool{true, false} {
		b.Run(fmt.Sprintf("fsync=%v", sync), func(b *testing.B) {
			j, err := Open(b.TempDir(), Options{DeviceID: "dev-1", NoSync: !sync})
			if err != nil {
				b.Fatal(err)
			}
			defer j.Close()
			ev := testEvent(b, 1)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := j.Append(ev); err != nil {
					b.Fatal(err)
				}
			}
			if err := j.Sync(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

func TestCheckpointsTrimmedWithCompaction(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, 2048, 1<<20)
	defer j.Close()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for i := 0; i < 10; i++ {
		appendN(t, j, i*5+1, 5)
		if _, err := j.Checkpoint(key); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Ack(40); err != nil {
		t.Fatal(err)
	}
	cps, _ := j.Checkpoints()
	if len(cps) >= 10 || len(cps) < 2 {
		t.Fatalf("%d checkpoints after compaction", len(cps))
	}
	if cps[0].Seq > j.FirstSeq()-1 {
		t.Fatalf("the checkpoint vouching for the anchor was dropped: first %d, anchor %d", cps[0].Seq, j.FirstSeq()-1)
	}
	if err := j.VerifyCheckpoints(&key.PublicKey); err != nil {
		t.Fatal(err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err := j.VerifyCheckpoints(&other.PublicKey); err == nil {
		t.Fatal("checkpoints verified with another key")
	}
	if err := j.Verify(); err != nil {
		t.Fatal(err)
	}
}

func TestEscapedContentHashesStably(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, 1<<20, 4<<20)
	ev, _ := events.New(events.TypePolicyDenial, "dev-1", events.SeverityHigh, time.Now(),
		events.PolicyDenial{Policy: "p<&>", Action: "a\u2028b", Reason: "\"quoted\" \\ é"})
	if _, err := j.Append(ev); err != nil {
		t.Fatal(err)
	}
	j.Close()
	j = open(t, dir, 1<<20, 4<<20)
	defer j.Close()
	if err := j.Verify(); err != nil {
		t.Fatal(err)
	}
	recs, _ := j.Read(1, 1)
	got, err := events.Decode(recs[0].Event)
	if err != nil || got.Details.(*events.PolicyDenial).Policy != "p<&>" {
		t.Fatal(got, err)
	}
}

// TestCrashBetweenAnchorAndDelete: a crash after compaction moved the anchor
// but before it deleted the segment leaves a stale segment; Open finishes
// the deletion.
func TestCrashBetweenAnchorAndDelete(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, 2048, 1<<20)
	appendN(t, j, 1, 30)
	first := segFiles(t, dir)[0]
	saved, _ := os.ReadFile(first)
	if err := j.Ack(30); err != nil {
		t.Fatal(err)
	}
	j.Close()
	os.WriteFile(first, saved, 0o600) // the delete "never happened"
	j = open(t, dir, 2048, 1<<20)
	defer j.Close()
	if err := j.Verify(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(first); !os.IsNotExist(err) {
		t.Fatal("stale segment kept")
	}
}
