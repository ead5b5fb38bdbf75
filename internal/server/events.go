package server

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent/journal"
	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/events"
	"github.com/bulwark-iot/bulwark/internal/store"
)

// defaultEventRetention is how long events are kept when
// Config.EventRetentionDays is zero.
const defaultEventRetention = 90 * 24 * time.Hour

// eventRetention is the configured retention of security events.
func (s *Server) eventRetention() time.Duration {
	if s.cfg.EventRetentionDays > 0 {
		return time.Duration(s.cfg.EventRetentionDays) * 24 * time.Hour
	}
	return defaultEventRetention
}

// pruneEvents deletes events older than the retention (run by maintain).
func (s *Server) pruneEvents(ctx context.Context) {
	n, err := s.store.PruneEvents(ctx, s.now().Add(-s.eventRetention()))
	switch {
	case err != nil && ctx.Err() == nil:
		s.log.Warn("pruning security events", "err", err)
	case n > 0:
		s.log.Info("pruned security events past retention", "deleted", n, "retention_days", int(s.eventRetention()/(24*time.Hour)))
	}
}

// handleEvents stores a batch of a device's journal records. Every record
// is checked first (schema, device, seq, hash; the signed checkpoint if
// sent), so bad input is refused with nothing stored. The batch is then
// stored in one transaction, idempotently by (device, seq), with the chain
// checked against the last stored record: a sequence gap or a broken link
// is stored as a journal.gap or journal.chain_broken event raised by the
// server. The answer, sent only after the commit, names the highest seq
// the server holds.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) error {
	dc := deviceFrom(r)
	req, err := decodeEventBatch(r)
	if err != nil {
		return err
	}
	if err := req.Validate(); err != nil {
		return badRequest(err.Error())
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	rows := make([]store.Event, len(req.Records))
	for i, rec := range req.Records {
		ev, err := events.Decode(rec.Event)
		if err != nil {
			return errf(http.StatusBadRequest, "invalid_event", fmt.Sprintf("records[%d].event: %v", i, strings.TrimPrefix(err.Error(), "events: ")))
		}
		switch {
		case ev.DeviceID != dc.id:
			return errf(http.StatusBadRequest, "wrong_device", fmt.Sprintf("records[%d].event.device_id is not this device's ID", i))
		case ev.Seq != rec.Seq:
			return errf(http.StatusBadRequest, "invalid_event", fmt.Sprintf("records[%d].event.seq is %d, the record's seq is %d", i, ev.Seq, rec.Seq))
		case ev.ServerTime != nil:
			return errf(http.StatusBadRequest, "invalid_event", fmt.Sprintf("records[%d].event.server_time is set by the server, not the device", i))
		}
		if journal.RecordHash(rec.Seq, rec.PrevHash, rec.Event) != rec.Hash {
			return errf(http.StatusBadRequest, "hash_mismatch", fmt.Sprintf("records[%d].hash does not match the record (seq %d)", i, rec.Seq))
		}
		rows[i] = store.Event{DeviceID: dc.id, Seq: rec.Seq, Source: store.EventFromDevice, Type: ev.Type, SeverityID: ev.SeverityID,
			DeviceTime: ev.DeviceTime, ServerTime: now, PrevHash: rec.PrevHash, Hash: rec.Hash, Data: rec.Event}
	}
	lo, hi := req.Records[0].Seq, req.Records[len(req.Records)-1].Seq
	cp := req.Checkpoint
	if cp != nil {
		if cp.DeviceID != dc.id {
			return errf(http.StatusBadRequest, "wrong_device", "checkpoint.device_id is not this device's ID")
		}
		if cp.Seq > hi || cp.Seq < lo && lo-cp.Seq > api.MaxEventBatch {
			return errf(http.StatusBadRequest, "bad_checkpoint", "checkpoint.seq must be within the batch or the batch before it")
		}
		jc := journal.Checkpoint{DeviceID: cp.DeviceID, Seq: cp.Seq, Hash: cp.Hash, Time: cp.Time, Signature: cp.Signature}
		if err := journal.VerifyCheckpoint(dc.cert.PublicKey, jc); err != nil {
			return &httpError{Status: http.StatusBadRequest, Code: "bad_checkpoint", Msg: "checkpoint signature does not verify with the device certificate's key", Err: err}
		}
		lo = min(lo, cp.Seq)
	}

	// Matched outside the writer; stored with the records they concern.
	hits := s.ioc.match(dc.id, rows, now)
	var stored []iocHit
	var resp api.EventBatchResponse
	err = s.store.IngestEvents(r.Context(), dc.id, lo, hi, now, func(head store.EventHead, known map[uint64]string) (store.EventIngest, error) {
		resp = api.EventBatchResponse{ServerTime: now}
		out := store.EventIngest{Head: head, Insert: make([]store.Event, 0, len(rows)+1)}
		raise := func(typ string, seq uint64, details any) error {
			ev, err := events.New(typ, dc.id, events.SeverityHigh, now, details)
			if err != nil {
				return err
			}
			ev.Seq = seq // the record concerned; the stored row has seq 0
			data, err := ev.Marshal()
			if err != nil {
				return err
			}
			out.Insert = append(out.Insert, store.Event{DeviceID: dc.id, Source: store.EventFromServer, Type: typ, SeverityID: ev.SeverityID,
				DeviceTime: now, ServerTime: now, Data: data})
			resp.Raised = append(resp.Raised, typ)
			s.log.Warn("device journal: "+typ, "device", dc.id, "seq", seq, "details", details)
			return nil
		}
		differs := false
		for _, row := range rows {
			if row.Seq <= head.LastSeq {
				// Already stored: a resend. It must be the same record;
				// one event per batch names the first that is not.
				resp.Duplicates++
				if h, ok := known[row.Seq]; ok && h != row.Hash && !differs {
					differs = true
					if err := raise(events.TypeJournalChainBroken, row.Seq, events.JournalChainBroken{Seq: row.Seq, ExpectedHash: h, ActualHash: row.Hash, Reason: "resent_record_differs"}); err != nil {
						return out, err
					}
				}
				continue
			}
			last := out.Head.LastSeq
			switch {
			case row.Seq != last+1:
				if err := raise(events.TypeJournalGap, last+1, events.JournalGap{FromSeq: last + 1, ToSeq: row.Seq - 1, Reason: "missing"}); err != nil {
					return out, err
				}
			case row.PrevHash != out.Head.LastHash:
				if err := raise(events.TypeJournalChainBroken, row.Seq, events.JournalChainBroken{Seq: row.Seq, ExpectedHash: out.Head.LastHash, ActualHash: row.PrevHash, Reason: "prev_hash_mismatch"}); err != nil {
					return out, err
				}
			}
			out.Insert = append(out.Insert, row)
			out.Head.LastSeq, out.Head.LastHash = row.Seq, row.Hash
			resp.Stored++
		}
		if cp != nil && cp.Seq > out.Head.CheckpointSeq {
			var h string
			// rows are in increasing seq order (Validate).
			i, ok := slices.BinarySearchFunc(rows, cp.Seq, func(r store.Event, seq uint64) int { return cmp.Compare(r.Seq, seq) })
			if ok {
				h = rows[i].Hash
			} else {
				h, ok = known[cp.Seq]
			}
			switch {
			case ok && h == cp.Hash:
				out.Head.CheckpointSeq, out.Head.CheckpointHash, out.Head.CheckpointTime = cp.Seq, cp.Hash, cp.Time
			case ok:
				if err := raise(events.TypeJournalChainBroken, cp.Seq, events.JournalChainBroken{Seq: cp.Seq, ExpectedHash: cp.Hash, ActualHash: h, Reason: "checkpoint_mismatch"}); err != nil {
					return out, err
				}
			}
		}
		stored = stored[:0]
		for _, h := range hits {
			if h.match.EventSeq > head.LastSeq { // a newly stored record's
				out.Insert = append(out.Insert, h.event)
				stored = append(stored, h)
			}
		}
		resp.AckedSeq = out.Head.LastSeq
		return out, nil
	})
	if err != nil {
		return internal(err)
	}
	s.ioc.reportHits(dc.id, stored)
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// decodeEventBatch reads an event batch as decode reads a body, through
// api.DecodeEventBatch (one pass for the agent's form).
func decodeEventBatch(r *http.Request) (*api.EventBatch, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" && ct != "application/json" && !hasPrefix(ct, "application/json;") {
		return nil, errf(http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json")
	}
	const limit = api.MaxEventsBody
	data, err := readBody(r, limit+1)
	if err != nil {
		return nil, badRequest(fmt.Sprintf("reading body: %v", err))
	}
	b, err := api.DecodeEventBatch(data, limit)
	if err != nil {
		var de *api.DecodeError
		if errors.As(err, &de) && de.TooLarge {
			return nil, errf(http.StatusRequestEntityTooLarge, "too_large", de.Msg)
		}
		return nil, badRequest(err.Error())
	}
	return b, nil
}

// readBody reads at most max bytes of r's body. With a Content-Length it
// reads into one buffer of that size (io.ReadAll grows its buffer by
// doubling, copying and discarding ~2× a large batch); a body longer than
// its Content-Length is an error of the HTTP layer.
func readBody(r *http.Request, max int64) ([]byte, error) {
	body := io.LimitReader(http.MaxBytesReader(nil, r.Body, max), max)
	if n := r.ContentLength; n > 0 && n <= max {
		buf := make([]byte, n)
		if _, err := io.ReadFull(body, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	return io.ReadAll(body)
}

// withServerTime returns a stored envelope with server_time added.
func withServerTime(data []byte, t time.Time) json.RawMessage {
	if len(data) < 2 || data[len(data)-1] != '}' {
		return data
	}
	out := make([]byte, 0, len(data)+48)
	out = append(out, data[:len(data)-1]...)
	out = append(out, `,"server_time":"`...)
	out = t.UTC().AppendFormat(out, time.RFC3339Nano)
	out = append(out, `"}`...)
	return out
}

func storedEventView(e *store.Event) api.StoredEvent {
	return api.StoredEvent{ID: e.ID, DeviceID: e.DeviceID, Seq: e.Seq, Source: e.Source, PrevHash: e.PrevHash, Hash: e.Hash,
		Event: withServerTime(e.Data, e.ServerTime)}
}

// eventFilter builds the store filter from the query string, scoped to
// what p may see.
func (s *Server) eventFilter(r *http.Request, p *Principal) (store.EventFilter, error) {
	q := r.URL.Query()
	f := store.EventFilter{Scope: p.Scope(api.RoleAuditor), Group: q.Get("group"), Type: q.Get("type")}
	if dev := q.Get("device"); dev != "" {
		if _, err := s.VisibleDevice(r, p, dev, api.RoleAuditor); err != nil {
			return f, err
		}
		f.DeviceID = dev
	}
	if len(f.Group) > 256 {
		return f, badRequest("group is longer than 256 characters")
	}
	if f.Type != "" {
		if _, ok := events.Lookup(f.Type); !ok {
			return f, badRequest(fmt.Sprintf("type %q is not an event type (one of %s)", f.Type, strings.Join(events.Types(), ", ")))
		}
	}
	if v := q.Get("severity"); v != "" {
		sev, ok := parseSeverity(v)
		if !ok {
			return f, badRequest("severity must be an OCSF severity name (informational, low, medium, high, critical, fatal) or id 0..6")
		}
		f.MinSeverity = sev
	}
	for _, tp := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(tp.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return f, badRequest(tp.name + " must be an RFC 3339 time, e.g. 2026-11-26T20:00:00Z")
			}
			*tp.dst = t
		}
	}
	return f, nil
}

// parseSeverity accepts an OCSF severity name (any case) or id.
func parseSeverity(v string) (int, bool) {
	if n, err := strconv.Atoi(v); err == nil {
		return n, events.SeverityName(n) != ""
	}
	for id := 0; id <= events.SeverityFatal; id++ {
		if strings.EqualFold(events.SeverityName(id), v) {
			return id, true
		}
	}
	return 0, false
}

// handleListEvents answers GET /api/v1/events: a page of events, newest
// first, limited to the devices the caller may see.
func (s *Server) handleListEvents(w http.ResponseWriter, r *http.Request) error {
	p := PrincipalFrom(r.Context())
	f, err := s.eventFilter(r, p)
	if err != nil {
		return err
	}
	if f.Limit, err = intParam(r, "limit", 100, api.MaxEventPage); err != nil {
		return err
	}
	if f.Limit == 0 {
		f.Limit = 100
	}
	if c := r.URL.Query().Get("cursor"); c != "" {
		id, err := strconv.ParseInt(c, 10, 64)
		if err != nil || id <= 0 {
			return badRequest("cursor is not a cursor from a previous page")
		}
		f.Before = id
	}
	list, err := s.store.ListEvents(r.Context(), f)
	if err != nil {
		return internal(err)
	}
	page := api.EventPage{Events: make([]api.StoredEvent, 0, len(list))}
	for i := range list {
		page.Events = append(page.Events, storedEventView(&list[i]))
	}
	if len(list) == f.Limit {
		page.NextCursor = strconv.FormatInt(list[len(list)-1].ID, 10)
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

// handleExportEvents streams the matching events as JSON lines, oldest
// first: each line one event envelope (docs/events.md) with server_time.
func (s *Server) handleExportEvents(w http.ResponseWriter, r *http.Request) error {
	p := PrincipalFrom(r.Context())
	f, err := s.eventFilter(r, p)
	if err != nil {
		return err
	}
	f.Ascending, f.Limit = true, 1000
	// The first page is read before answering, so that a store failure
	// is still a clean 500.
	list, err := s.store.ListEvents(r.Context(), f)
	if err != nil {
		return internal(err)
	}
	s.audit(r.Context(), auditRecord{actor: p.Actor(), action: "events.export", target: "events", remote: ClientIP(r), detail: r.URL.RawQuery, outcome: "ok"})
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 64<<10)
	rc := http.NewResponseController(w)
	for len(list) > 0 {
		for i := range list {
			bw.Write(withServerTime(list[i].Data, list[i].ServerTime))
			bw.WriteByte('\n')
		}
		if err := bw.Flush(); err != nil {
			return nil // the client went away
		}
		rc.Flush()
		if len(list) < f.Limit {
			break
		}
		f.After = list[len(list)-1].ID
		if list, err = s.store.ListEvents(r.Context(), f); err != nil {
			// Too late for a status: cut the stream short so the client
			// sees an incomplete answer, not a complete-looking one.
			s.log.Error("exporting events", "err", err)
			panic(http.ErrAbortHandler)
		}
	}
	return nil
}
