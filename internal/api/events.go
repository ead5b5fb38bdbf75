package api

import (
	"bytes"
	"encoding/json"
	"time"
	"unicode/utf8"
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

// DecodeEventBatch decodes the body of POST PathEvents as Decode would,
// with the same limits and errors, but in one pass for the form the
// agent sends (json.Marshal of an EventBatch without a checkpoint: no
// whitespace between the envelope's members, members in declaration
// order). Each record's Event then aliases data rather than being copied.
// Any other form, and any error, goes through the general decoder, which
// names the problem; the two agree on everything the fast path accepts
// (FuzzDecodeEventBatch checks it).
func DecodeEventBatch(data []byte, limit int64) (*EventBatch, error) {
	if int64(len(data)) <= limit && utf8.Valid(data) {
		if b, ok := decodeEventBatchFast(data); ok {
			return b, nil
		}
	}
	var b EventBatch
	if err := DecodeBytes(data, limit, &b); err != nil {
		return nil, err
	}
	return &b, nil
}

// decodeEventBatchFast parses
//
//	{"records":[{"seq":N,"prev_hash":"…","hash":"…","event":{…}},…]}
//
// exactly (an optional "checkpoint":null after the records), checking the
// event objects against the full JSON grammar.
func decodeEventBatchFast(data []byte) (*EventBatch, bool) {
	p := batchParser{data: data}
	if !p.lit(`{"records":[`) {
		return nil, false
	}
	b := &EventBatch{}
	if p.peek(']') {
		b.Records = []EventRecord{}
	} else {
		// A first guess at the count saves regrowing the slice.
		b.Records = make([]EventRecord, 0, min(MaxEventBatch, 1+bytes.Count(data, []byte(`{"seq":`))))
		for {
			var r EventRecord
			var ok bool
			if !p.lit(`{"seq":`) {
				return nil, false
			}
			if r.Seq, ok = p.uint(); !ok || !p.lit(`,"prev_hash":`) {
				return nil, false
			}
			if r.PrevHash, ok = p.plainString(); !ok || !p.lit(`,"hash":`) {
				return nil, false
			}
			if r.Hash, ok = p.plainString(); !ok || !p.lit(`,"event":`) {
				return nil, false
			}
			start := p.i
			if !p.peek('{') || !p.value(0) {
				return nil, false
			}
			r.Event = json.RawMessage(data[start:p.i:p.i])
			if !p.lit(`}`) {
				return nil, false
			}
			b.Records = append(b.Records, r)
			if len(b.Records) > MaxEventBatch+1 {
				return nil, false // let the general path refuse it
			}
			if !p.lit(`,`) {
				break
			}
		}
	}
	if !p.lit(`]`) {
		return nil, false
	}
	p.lit(`,"checkpoint":null`)
	if !p.lit(`}`) || p.i != len(data) {
		return nil, false
	}
	return b, true
}

// batchParser is a cursor over an event batch body.
type batchParser struct {
	data []byte
	i    int
}

func (p *batchParser) lit(s string) bool {
	if len(p.data)-p.i < len(s) || string(p.data[p.i:p.i+len(s)]) != s {
		return false
	}
	p.i += len(s)
	return true
}

func (p *batchParser) peek(c byte) bool { return p.i < len(p.data) && p.data[p.i] == c }

// uint reads a JSON number that is an unsigned integer fitting uint64,
// written without a fraction or exponent.
func (p *batchParser) uint() (uint64, bool) {
	start := p.i
	var n uint64
	for p.i < len(p.data) && '0' <= p.data[p.i] && p.data[p.i] <= '9' {
		d := uint64(p.data[p.i] - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
		p.i++
	}
	digits := p.i - start
	if digits == 0 || digits > 1 && p.data[start] == '0' {
		return 0, false
	}
	if p.i < len(p.data) && (p.data[p.i] == '.' || p.data[p.i] == 'e' || p.data[p.i] == 'E') {
		return 0, false
	}
	return n, true
}

// plainString reads a JSON string without escapes or control characters,
// whose value is then its bytes.
func (p *batchParser) plainString() (string, bool) {
	if !p.peek('"') {
		return "", false
	}
	p.i++
	start := p.i
	for p.i < len(p.data) {
		c := p.data[p.i]
		switch {
		case c == '"':
			s := string(p.data[start:p.i])
			p.i++
			return s, true
		case c == '\\' || c < 0x20:
			return "", false
		}
		p.i++
	}
	return "", false
}

// maxEventDepth bounds nesting in the fast path; deeper values go to the
// general decoder.
const maxEventDepth = 64

// value skips one JSON value (RFC 8259 grammar, whitespace allowed inside
// containers as encoding/json allows it), reporting whether it is valid.
func (p *batchParser) value(depth int) bool {
	if p.i >= len(p.data) {
		return false
	}
	switch c := p.data[p.i]; {
	case c == '{':
		if depth >= maxEventDepth {
			return false
		}
		p.i++
		p.space()
		if p.peek('}') {
			p.i++
			return true
		}
		for {
			if !p.peek('"') || !p.str() {
				return false
			}
			p.space()
			if !p.lit(":") {
				return false
			}
			p.space()
			if !p.value(depth + 1) {
				return false
			}
			p.space()
			if p.peek('}') {
				p.i++
				return true
			}
			if !p.lit(",") {
				return false
			}
			p.space()
		}
	case c == '[':
		if depth >= maxEventDepth {
			return false
		}
		p.i++
		p.space()
		if p.peek(']') {
			p.i++
			return true
		}
		for {
			if !p.value(depth + 1) {
				return false
			}
			p.space()
			if p.peek(']') {
				p.i++
				return true
			}
			if !p.lit(",") {
				return false
			}
			p.space()
		}
	case c == '"':
		return p.str()
	case c == 't':
		return p.lit("true")
	case c == 'f':
		return p.lit("false")
	case c == 'n':
		return p.lit("null")
	case c == '-' || '0' <= c && c <= '9':
		return p.number()
	}
	return false
}

func (p *batchParser) space() {
	for p.i < len(p.data) {
		switch p.data[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// str skips a JSON string (the body is known to be valid UTF-8).
func (p *batchParser) str() bool {
	p.i++ // the opening quote
	for p.i < len(p.data) {
		c := p.data[p.i]
		switch {
		case c == '"':
			p.i++
			return true
		case c < 0x20:
			return false
		case c == '\\':
			p.i++
			if p.i >= len(p.data) {
				return false
			}
			switch p.data[p.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.i++
			case 'u':
				if len(p.data)-p.i < 5 {
					return false
				}
				for _, h := range p.data[p.i+1 : p.i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return false
					}
				}
				p.i += 5
			default:
				return false
			}
		default:
			p.i++
		}
	}
	return false
}

// number skips a JSON number.
func (p *batchParser) number() bool {
	digits := func() int {
		n := 0
		for p.i < len(p.data) && '0' <= p.data[p.i] && p.data[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	p.lit("-")
	if p.peek('0') {
		p.i++
	} else if digits() == 0 {
		return false
	}
	if p.lit(".") && digits() == 0 {
		return false
	}
	if p.peek('e') || p.peek('E') {
		p.i++
		if !p.lit("+") {
			p.lit("-")
		}
		if digits() == 0 {
			return false
		}
	}
	return true
}
