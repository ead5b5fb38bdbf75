// Package journal is the agent's tamper-evident local event journal: an
// append-only, sequence-numbered, SHA-256 hash-chained log of security events
// in bounded-size segment files, with signed checkpoints.
//
// On-disk layout of the journal directory:
//
//	seg-<first seq, 20 digits>.log  one record per line:
//	    {"seq":N,"prev_hash":"<hex>","hash":"<hex>","event":{...}}
//	meta.json                       {"acked":N,"anchor_seq":N,"anchor_hash":"<hex>"}
//	checkpoints.log                 one signed checkpoint per line
//
// hash = SHA-256 over len:seq; len:prev_hash; len:event; (decimal length,
// colon, value, semicolon), the encoding of api.AuditHash. The first record
// has an empty prev_hash; after compaction the anchor in meta.json holds the
// seq and hash of the last deleted record, so the chain stays verifiable.
//
// Overflow policy (bounded disk use): the journal holds at most MaxBytes
// (plus one record). When an append would pass the cap, whole segments are
// deleted oldest first. Acknowledged segments go first (they are the oldest
// and are usually already gone, as Ack compacts them). If an unacknowledged
// segment must go, its records are lost, and the journal appends a
// journal.gap event naming the lost seq range right after the record that
// caused the overflow: a loss is never silent. A gap event always names the
// whole range from the first unacknowledged seq, so it also covers earlier
// gap events lost in a later overflow.
//
// Crash safety: each record is written with a single write and, unless
// Options.NoSync, fsynced before Append returns. A torn last record (a
// partial line left by a crash) is truncated when the journal is opened.
package journal

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent/state"
	"github.com/bulwark-iot/bulwark/internal/events"
)

// Options configure a journal.
type Options struct {
	// DeviceID is stamped on journal.gap events and checkpoints.
	DeviceID string
	// SegmentBytes is the size at which a segment is closed (default 1 MiB,
	// at least 1 KiB).
	SegmentBytes int64
	// MaxBytes caps the journal's segments (default 16 MiB, at least three
	// segments).
	MaxBytes int64
	// NoSync skips the fsync per Append; call Sync after a batch.
	NoSync bool
	// Now is the clock for gap events and checkpoints (default time.Now).
	Now func() time.Time
	// After, when the directory holds no journal yet, starts the new
	// journal's chain after this seq (its first record is After+1, with an
	// empty prev_hash), as if records up to After had been acknowledged
	// and compacted. A journal replacing an unreadable one continues its
	// numbering (see HighestSeq), so that the server does not take the
	// new records for resends of the old ones and drop them.
	After uint64
}

// Record is one journal record.
type Record struct {
	Seq      uint64          `json:"seq"`
	PrevHash string          `json:"prev_hash"`
	Hash     string          `json:"hash"`
	Event    json.RawMessage `json:"event"`
}

type meta struct {
	Acked      uint64 `json:"acked"`
	AnchorSeq  uint64 `json:"anchor_seq"`
	AnchorHash string `json:"anchor_hash"`
}

type segment struct {
	first, last uint64 // last = first-1 when empty
	lastHash    string
	size        int64
	path        string
}

// Journal is safe for concurrent use.
type Journal struct {
	mu       sync.Mutex
	dir      string
	opts     Options
	segs     []*segment
	f        *os.File // active segment, segs[len-1]
	lastSeq  uint64
	lastHash string
	meta     meta
	total    int64
	closed   bool
}

const maxLine = events.MaxEventSize + 512

// RecordHash computes a record's chained hash. The encoding is fixed.
func RecordHash(seq uint64, prevHash string, event []byte) string {
	// Each field is len:value; in decimal. Built without fmt: the
	// server checks the hash of every record it ingests.
	var buf [160]byte
	b := buf[:0]
	var num [20]byte
	n := strconv.AppendUint(num[:0], seq, 10)
	b = strconv.AppendInt(b, int64(len(n)), 10)
	b = append(append(append(b, ':'), n...), ';')
	b = strconv.AppendInt(b, int64(len(prevHash)), 10)
	b = append(append(append(b, ':'), prevHash...), ';')
	b = strconv.AppendInt(b, int64(len(event)), 10)
	b = append(b, ':')
	h := sha256.New()
	h.Write(b)
	h.Write(event)
	h.Write([]byte{';'})
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0]))
}

func segName(first uint64) string { return fmt.Sprintf("seg-%020d.log", first) }

// Open opens or creates the journal in dir, truncating a torn last record.
func Open(dir string, opts Options) (*Journal, error) {
	if opts.SegmentBytes == 0 {
		opts.SegmentBytes = 1 << 20
	}
	if opts.MaxBytes == 0 {
		opts.MaxBytes = 16 << 20
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SegmentBytes < 1024 || opts.MaxBytes < 3*opts.SegmentBytes {
		return nil, errors.New("journal: SegmentBytes must be at least 1 KiB and MaxBytes at least 3 segments")
	}
	if opts.DeviceID == "" {
		return nil, errors.New("journal: DeviceID is required")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	j := &Journal{dir: dir, opts: opts}
	if b, err := os.ReadFile(filepath.Join(dir, "meta.json")); err == nil {
		if err := json.Unmarshal(b, &j.meta); err != nil {
			return nil, fmt.Errorf("journal: meta.json: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	names, err := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	if len(names) == 0 && j.meta == (meta{}) && opts.After > 0 {
		j.meta = meta{Acked: opts.After, AnchorSeq: opts.After}
		if err := j.writeMeta(); err != nil {
			return nil, err
		}
	}
	j.lastSeq, j.lastHash = j.meta.AnchorSeq, j.meta.AnchorHash
	for i, name := range names {
		first, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(name), "seg-"), ".log"), 10, 64)
		if err != nil || first == 0 {
			return nil, fmt.Errorf("journal: bad segment name %s", name)
		}
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		end := bytes.LastIndexByte(data, '\n') + 1
		if end < len(data) {
			if i != len(names)-1 {
				return nil, fmt.Errorf("journal: segment %s ends in a partial record but is not the last segment", name)
			}
			// Torn write: drop the partial record.
			if err := truncate(name, int64(end)); err != nil {
				return nil, err
			}
			data = data[:end]
		}
		s := &segment{first: first, last: first - 1, size: int64(len(data)), path: name, lastHash: j.lastHash}
		if len(data) > 0 {
			lines := bytes.Split(data[:len(data)-1], []byte("\n"))
			var r Record
			if err := json.Unmarshal(lines[len(lines)-1], &r); err != nil {
				return nil, fmt.Errorf("journal: last record of %s is corrupt: %w", name, err)
			}
			s.last, s.lastHash = r.Seq, r.Hash
		}
		if s.last >= s.first && s.last <= j.meta.AnchorSeq {
			// A crash interrupted dropOldest after it moved the anchor:
			// finish deleting the segment.
			if err := os.Remove(name); err != nil {
				return nil, err
			}
			continue
		}
		j.segs = append(j.segs, s)
		j.total += s.size
		if s.last >= s.first {
			j.lastSeq, j.lastHash = s.last, s.lastHash
		}
	}
	if j.meta.Acked > j.lastSeq {
		j.meta.Acked = j.lastSeq
	}
	if len(j.segs) == 0 {
		if err := j.newSegment(); err != nil {
			return nil, err
		}
	} else {
		a := j.segs[len(j.segs)-1]
		if j.f, err = os.OpenFile(a.path, os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
			return nil, err
		}
	}
	return j, nil
}

// HighestSeq returns the highest seq the journal in dir may have used,
// without trusting its records, which may be corrupt: the larger of
// meta.json's acknowledged and anchor seqs and, for each segment, its first
// seq plus its complete lines minus one. It is 0 for a directory with no
// journal. A journal that replaces an unreadable one starts after it
// (Options.After).
func HighestSeq(dir string) uint64 {
	var m meta
	if b, err := os.ReadFile(filepath.Join(dir, "meta.json")); err == nil {
		json.Unmarshal(b, &m) // a corrupt meta.json counts as none
	}
	high := max(m.Acked, m.AnchorSeq)
	names, _ := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	for _, name := range names {
		first, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(name), "seg-"), ".log"), 10, 64)
		if err != nil || first == 0 {
			continue
		}
		data, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		if n := uint64(bytes.Count(data, []byte("\n"))); n > 0 {
			high = max(high, first+n-1)
		}
	}
	return high
}

func truncate(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return err
	}
	return f.Sync()
}

func (j *Journal) newSegment() error {
	first := j.lastSeq + 1
	path := filepath.Join(j.dir, segName(first))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if j.f != nil {
		if err := j.f.Sync(); err != nil {
			f.Close()
			return err
		}
		j.f.Close()
	}
	j.f = f
	j.segs = append(j.segs, &segment{first: first, last: first - 1, lastHash: j.lastHash, path: path})
	return syncDir(j.dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (j *Journal) writeMeta() error {
	b, _ := json.Marshal(j.meta)
	return state.WriteFile(filepath.Join(j.dir, "meta.json"), b, 0o600)
}

// dropOldest deletes the oldest (never the active) segment, moving the
// anchor past it. It returns the unacknowledged seq range lost, if any.
func (j *Journal) dropOldest() (from, to uint64, err error) {
	s := j.segs[0]
	if s.last >= s.first && s.last > j.meta.Acked {
		// Oldest first: every unacked record up to s.last is now gone,
		// including any earlier gap event, so the range starts at the ack.
		from, to = j.meta.Acked+1, s.last
	}
	if s.last >= s.first {
		j.meta.AnchorSeq, j.meta.AnchorHash = s.last, s.lastHash
	}
	if err := j.writeMeta(); err != nil {
		return 0, 0, err
	}
	if err := os.Remove(s.path); err != nil {
		return 0, 0, err
	}
	j.segs = j.segs[1:]
	j.total -= s.size
	if err := syncDir(j.dir); err != nil {
		return 0, 0, err
	}
	return from, to, j.trimCheckpoints()
}

// Append assigns ev the next sequence number, stores it and returns the
// seq. Unless NoSync, the record is durable when Append returns.
func (j *Journal) Append(ev *events.Event) (uint64, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return 0, errors.New("journal: closed")
	}
	seq, lostFrom, lostTo, err := j.appendLocked(ev)
	if err != nil {
		return 0, err
	}
	for lostTo != 0 {
		gap, err := events.New(events.TypeJournalGap, j.opts.DeviceID, events.SeverityHigh, j.opts.Now(),
			events.JournalGap{FromSeq: lostFrom, ToSeq: lostTo, Reason: "overflow"})
		if err != nil {
			return 0, err
		}
		if _, lostFrom, lostTo, err = j.appendLocked(gap); err != nil {
			return 0, fmt.Errorf("journal: recording a gap: %w", err)
		}
	}
	if !j.opts.NoSync {
		if err := j.f.Sync(); err != nil {
			return 0, err
		}
	}
	return seq, nil
}

func (j *Journal) appendLocked(ev *events.Event) (seq, lostFrom, lostTo uint64, err error) {
	ev.Seq = j.lastSeq + 1
	data, err := ev.Marshal()
	if err != nil {
		ev.Seq = 0
		return 0, 0, 0, err
	}
	seq = ev.Seq
	rec := Record{Seq: seq, PrevHash: j.lastHash, Hash: RecordHash(seq, j.lastHash, data), Event: data}
	line, err := json.Marshal(rec)
	if err != nil {
		return 0, 0, 0, err
	}
	line = append(line, '\n')
	n := int64(len(line))
	if a := j.segs[len(j.segs)-1]; a.size > 0 && a.size+n > j.opts.SegmentBytes {
		if err := j.newSegment(); err != nil {
			return 0, 0, 0, err
		}
	}
	for j.total+n > j.opts.MaxBytes && len(j.segs) > 1 {
		from, to, err := j.dropOldest()
		if err != nil {
			return 0, 0, 0, err
		}
		if to != 0 {
			if lostTo == 0 {
				lostFrom = from
			}
			lostTo = to
		}
	}
	a := j.segs[len(j.segs)-1]
	if _, err := j.f.Write(line); err != nil {
		j.f.Truncate(a.size) // best effort: do not leave a partial record
		return 0, 0, 0, fmt.Errorf("journal: %w", err)
	}
	a.size += n
	a.last, a.lastHash = seq, rec.Hash
	j.total += n
	j.lastSeq, j.lastHash = seq, rec.Hash
	return seq, lostFrom, lostTo, nil
}

// Sync makes every appended record durable (for NoSync batches).
func (j *Journal) Sync() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.f.Sync()
}

// Close syncs and closes the journal.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	j.closed = true
	err := j.f.Sync()
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// LastSeq returns the seq of the newest record (0 if none yet).
func (j *Journal) LastSeq() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.lastSeq
}

// Acked returns the acknowledged seq.
func (j *Journal) Acked() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.meta.Acked
}

// FirstSeq returns the seq of the oldest record still stored (LastSeq()+1
// when the journal holds none).
func (j *Journal) FirstSeq() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.meta.AnchorSeq + 1
}

// Read returns up to limit records with seq >= fromSeq, in order. Records
// already deleted by compaction or overflow are skipped: the first record
// returned may have a larger seq than fromSeq.
func (j *Journal) Read(fromSeq uint64, limit int) ([]Record, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []Record
	for _, s := range j.segs {
		if len(out) >= limit {
			break
		}
		if s.last < s.first || s.last < fromSeq {
			continue
		}
		err := scan(s.path, func(line []byte) error {
			var r Record
			if err := json.Unmarshal(line, &r); err != nil {
				return fmt.Errorf("journal: corrupt record in %s: %w", filepath.Base(s.path), err)
			}
			if r.Seq >= fromSeq {
				out = append(out, r)
			}
			if len(out) >= limit {
				return io.EOF
			}
			return nil
		})
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// scan calls fn with each complete line of a segment; fn returning io.EOF
// stops the scan without error.
func scan(path string, fn func(line []byte) error) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return nil // partial record being written or torn; not returned
		}
		if err := fn(data[:i]); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		data = data[i+1:]
	}
	return nil
}

// Ack records that every record up to and including uptoSeq has been
// acknowledged (made durable by the server), and deletes segments that hold
// only acknowledged records (the active segment is kept).
func (j *Journal) Ack(uptoSeq uint64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if uptoSeq > j.lastSeq {
		return fmt.Errorf("journal: ack of %d beyond the last seq %d", uptoSeq, j.lastSeq)
	}
	if uptoSeq <= j.meta.Acked {
		return nil
	}
	j.meta.Acked = uptoSeq
	if err := j.writeMeta(); err != nil {
		return err
	}
	for len(j.segs) > 1 && j.segs[0].last <= j.meta.Acked {
		if _, _, err := j.dropOldest(); err != nil {
			return err
		}
	}
	return nil
}

// ChainError reports the first bad record found by Verify.
type ChainError struct {
	Seq    uint64 // the first seq that is missing, altered or out of order
	Reason string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("journal: record %d: %s", e.Seq, e.Reason)
}

// Verify re-reads the journal from disk and checks the hash chain from the
// anchor to the newest record: every record present, in order, unaltered,
// its event a valid event with the record's seq; and every stored checkpoint
// at or after the anchor matching the chain. It returns a *ChainError naming
// the first bad seq.
func (j *Journal) Verify() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	prevSeq, prevHash := j.meta.AnchorSeq, j.meta.AnchorHash
	hashes := map[uint64]string{}
	for _, s := range j.segs {
		firstInSeg := true
		err := scan(s.path, func(line []byte) error {
			want := prevSeq + 1
			var r Record
			dec := json.NewDecoder(bytes.NewReader(line))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&r); err != nil {
				return &ChainError{want, "unreadable record: " + err.Error()}
			}
			if r.Seq != want {
				return &ChainError{want, fmt.Sprintf("found record %d instead: a record is missing or out of order", r.Seq)}
			}
			if firstInSeg && r.Seq != s.first {
				return &ChainError{want, fmt.Sprintf("segment %s starts with it", filepath.Base(s.path))}
			}
			firstInSeg = false
			if r.PrevHash != prevHash {
				return &ChainError{want, "prev_hash does not match the previous record: a record is missing or out of order"}
			}
			if RecordHash(r.Seq, r.PrevHash, r.Event) != r.Hash {
				return &ChainError{want, "hash mismatch: the record was altered"}
			}
			ev, err := events.Decode(r.Event)
			if err != nil {
				return &ChainError{want, "invalid event: " + err.Error()}
			}
			if ev.Seq != r.Seq {
				return &ChainError{want, fmt.Sprintf("event carries seq %d", ev.Seq)}
			}
			prevSeq, prevHash = r.Seq, r.Hash
			hashes[r.Seq] = r.Hash
			return nil
		})
		if errors.Is(err, os.ErrNotExist) {
			return &ChainError{prevSeq + 1, fmt.Sprintf("segment %s was deleted", filepath.Base(s.path))}
		}
		if err != nil {
			return err
		}
	}
	if prevSeq != j.lastSeq {
		return &ChainError{prevSeq + 1, fmt.Sprintf("missing: the journal ends at %d but had reached %d", prevSeq, j.lastSeq)}
	}
	cps, err := j.readCheckpoints()
	if err != nil {
		return err
	}
	for _, cp := range cps {
		if cp.Seq <= j.meta.AnchorSeq {
			continue
		}
		if cp.Seq > prevSeq {
			return &ChainError{prevSeq + 1, fmt.Sprintf("missing: checkpoint covers up to %d", cp.Seq)}
		}
		if hashes[cp.Seq] != cp.Hash {
			return &ChainError{cp.Seq, "hash differs from the signed checkpoint: the record was altered"}
		}
	}
	return nil
}
