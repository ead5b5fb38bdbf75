package api

import (
	"encoding/json"
	"time"
)

// PathEvents is where a device forwards records of its security event
// journal (see docs/events.md for the event format).
const PathEvents = "/device/v1/events"

// Limits on an event batch.
const (
	// MaxEventBatch is the most records one batch may carry.
	MaxEventBatch = 500
	// MaxEventBatchBytes is what the agent packs into one batch; the
	// server accepts bodies up to MaxEventsBody, which leaves room for the
	// envelope and one more record of the largest size.
	MaxEventBatchBytes = 1 << 20
	// MaxEventsBody bounds the body of POST PathEvents.
	MaxEventsBody = MaxEventBatchBytes + 128<<10
	// MaxEventPage bounds a page of GET /api/v1/events.
	MaxEventPage = 1000
)

// EventRecord is one record of a device's hash-chained journal: Hash is
// SHA-256 over len:seq; len:prev_hash; len:event; (decimal length, colon,
// value, semicolon), hex; PrevHash is the previous record's Hash ("" for
// seq 1). Event is the event JSON exactly as hashed.
type EventRecord struct {
	Seq      uint64          `json:"seq"`
	PrevHash string          `json:"prev_hash"`
	Hash     string          `json:"hash"`
	Event    json.RawMessage `json:"event"`
}

// JournalCheckpoint is a journal head signed by the device key: ECDSA
// (ASN.1, base64 in JSON) over SHA-256 of the journal's checkpoint message
// (journal.CheckpointMessage).
type JournalCheckpoint struct {
	DeviceID  string    `json:"device_id"`
	Seq       uint64    `json:"seq"`
	Hash      string    `json:"hash"`
	Time      time.Time `json:"time"`
	Signature []byte    `json:"sig"`
}

// EventBatch is the body of POST PathEvents: consecutive journal records,
// oldest first, and optionally the newest signed checkpoint.
type EventBatch struct {
	Records    []EventRecord      `json:"records"`
	Checkpoint *JournalCheckpoint `json:"checkpoint,omitempty"`
}

// EventBatchResponse answers an event batch once it is durable.
type EventBatchResponse struct {
	// AckedSeq is the highest journal seq the server holds for the
	// device: the agent may delete every record up to it.
	AckedSeq uint64 `json:"acked_seq"`
	// Stored counts the records newly stored; Duplicates those the
	// server already had (a resent batch).
	Stored     int `json:"stored"`
	Duplicates int `json:"duplicates"`
	// Raised lists the types of events the server raised about this
	// batch (journal.gap, journal.chain_broken).
	Raised []string `json:"raised,omitempty"`
	// ServerTime is the server's receipt time.
	ServerTime time.Time `json:"server_time"`
}

// StoredEvent is an event as the server holds it. Event is the event
// envelope (docs/events.md) with server_time set to the receipt time.
type StoredEvent struct {
	// ID orders events by arrival at the server.
	ID       int64  `json:"id"`
	DeviceID string `json:"device_id"`
	// Seq is the device journal's sequence number; 0 for events the
	// server raised itself (Source "server").
	Seq    uint64 `json:"seq"`
	Source string `json:"source"` // "device" or "server"
	// PrevHash and Hash are the journal record's chain links ("" for
	// server events).
	PrevHash string          `json:"prev_hash,omitempty"`
	Hash     string          `json:"hash,omitempty"`
	Event    json.RawMessage `json:"event"`
}

// EventPage is one page of GET /api/v1/events, newest first. NextCursor
// fetches the next (older) page; it is empty on the last page.
type EventPage struct {
	Events     []StoredEvent `json:"events"`
	NextCursor string        `json:"next_cursor,omitempty"`
}

// Validate checks a batch's shape: 1..MaxEventBatch records, seqs from 1
// and strictly increasing, hashes of the right form, each event at most
// 64 KiB. The server still checks each event against the schema and the
// chain against what it holds.
func (b *EventBatch) Validate() error {
	if len(b.Records) == 0 {
		return decodeErrf("records is empty")
	}
	if len(b.Records) > MaxEventBatch {
		return decodeErrf("records has %d entries, more than %d", len(b.Records), MaxEventBatch)
	}
	for i, r := range b.Records {
		if r.Seq == 0 {
			return decodeErrf("records[%d].seq must be at least 1", i)
		}
		if i > 0 && r.Seq <= b.Records[i-1].Seq {
			return decodeErrf("records[%d].seq %d does not follow %d: records must be in increasing seq order", i, r.Seq, b.Records[i-1].Seq)
		}
		if !isHexHash(r.Hash) {
			return decodeErrf("records[%d].hash must be 64 lowercase hex digits", i)
		}
		if r.PrevHash != "" && !isHexHash(r.PrevHash) {
			return decodeErrf("records[%d].prev_hash must be empty or 64 lowercase hex digits", i)
		}
		if len(r.Event) == 0 || r.Event[0] != '{' {
			return decodeErrf("records[%d].event must be a JSON object", i)
		}
		if len(r.Event) > 64<<10 {
			return decodeErrf("records[%d].event is larger than 64 KiB", i)
		}
	}
	if cp := b.Checkpoint; cp != nil {
		if cp.Seq == 0 || !isHexHash(cp.Hash) || cp.DeviceID == "" || cp.Time.IsZero() || len(cp.Signature) == 0 || len(cp.Signature) > 512 {
			return decodeErrf("checkpoint needs device_id, seq, a 64-hex-digit hash, time and sig")
		}
	}
	return nil
}

func isHexHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
