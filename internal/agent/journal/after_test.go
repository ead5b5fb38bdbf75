package journal

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// A journal that replaces an unreadable one continues its numbering:
// HighestSeq reads the old directory without trusting its records, and
// Options.After starts the new chain past it.
func TestNewJournalAfterUnreadableOne(t *testing.T) {
	old := t.TempDir()
	j := open(t, old, 1024, 1<<20)
	appendN(t, j, 1, 30)
	if err := j.Ack(12); err != nil {
		t.Fatal(err)
	}
	j.Close()
	if got := HighestSeq(old); got != 30 {
		t.Fatalf("HighestSeq of an intact journal: %d, want 30", got)
	}
	// Corrupt the last record so that Open refuses the journal.
	segs := segFiles(t, old)
	last := segs[len(segs)-1]
	b, err := os.ReadFile(last)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-2] = '!'
	if err := os.WriteFile(last, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(old, Options{DeviceID: "dev-1", SegmentBytes: 1024, MaxBytes: 1 << 20}); err == nil {
		t.Fatal("Open accepted a journal whose last record is corrupt")
	}
	if got := HighestSeq(old); got != 30 {
		t.Fatalf("HighestSeq of the corrupt journal: %d, want 30", got)
	}
	if got := HighestSeq(filepath.Join(old, "absent")); got != 0 {
		t.Fatalf("HighestSeq of no journal: %d", got)
	}

	dir := t.TempDir()
	n, err := Open(dir, Options{DeviceID: "dev-1", After: 30})
	if err != nil {
		t.Fatal(err)
	}
	if n.LastSeq() != 30 || n.Acked() != 30 {
		t.Fatalf("new journal after 30: last %d acked %d", n.LastSeq(), n.Acked())
	}
	seq, err := n.Append(testEvent(t, 31))
	if err != nil || seq != 31 {
		t.Fatalf("first append: seq %d, %v", seq, err)
	}
	recs, err := n.Read(1, 10)
	if err != nil || len(recs) != 1 || recs[0].Seq != 31 || recs[0].PrevHash != "" {
		t.Fatalf("read %+v, %v", recs, err)
	}
	if err := n.Verify(); err != nil {
		t.Fatalf("verify: %v", err)
	}
	n.Close()
	// Reopened, After no longer applies: the journal is what is on disk.
	n, err = Open(dir, Options{DeviceID: "dev-1", After: 99})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if seq, err := n.Append(testEvent(t, 32)); err != nil || seq != 32 {
		t.Fatalf("append after reopening: seq %d, %v", seq, err)
	}
	if err := n.Verify(); err != nil {
		t.Fatalf("verify after reopening: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "meta.json")); !bytes.Contains(b, []byte(`"anchor_seq":30`)) {
		t.Fatalf("meta.json %s", b)
	}
}
