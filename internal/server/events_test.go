package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent/journal"
	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/events"
	"github.com/bulwark-iot/bulwark/internal/server/servertest"
	"github.com/bulwark-iot/bulwark/internal/store"
)

// deviceJournal writes n events for d into a real journal and returns
// their records in wire form.
func deviceJournal(t testing.TB, d *device, n int) (*journal.Journal, []api.EventRecord) {
	t.Helper()
	j, err := journal.Open(t.TempDir(), journal.Options{DeviceID: d.id, NoSync: true, MaxBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	at := time.Date(2026, 11, 26, 20, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		ev, err := events.New(events.TypeAuthLogin, d.id, events.SeverityMedium, at.Add(time.Duration(i)*time.Second),
			events.AuthLogin{Activity: "logon", Outcome: "failure", Service: "ssh", User: fmt.Sprintf("user%d", i), SrcIP: "203.0.113.7", SrcPort: 40000 + i})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := j.Append(ev); err != nil {
			t.Fatal(err)
		}
	}
	return j, readRecords(t, j, 1, n)
}

func readRecords(t testing.TB, j *journal.Journal, from uint64, n int) []api.EventRecord {
	t.Helper()
	recs, err := j.Read(from, n)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]api.EventRecord, len(recs))
	for i, r := range recs {
		out[i] = api.EventRecord{Seq: r.Seq, PrevHash: r.PrevHash, Hash: r.Hash, Event: r.Event}
	}
	return out
}

func send(t testing.TB, d *device, recs []api.EventRecord) *api.EventBatchResponse {
	t.Helper()
	resp, err := d.client.SendEvents(context.Background(), &api.EventBatch{Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func listEvents(t testing.TB, ts *servertest.Server, token, query string) api.EventPage {
	t.Helper()
	var page api.EventPage
	if code := ts.Do(t, "GET", "/api/v1/events?"+query, token, nil, &page); code != 200 {
		t.Fatalf("GET /api/v1/events?%s: %d", query, code)
	}
	return page
}

func TestEventsResendIsIdempotent(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	d := enroll(t, ts, ts.EnrollToken(t, 1, ""), "ev-1")
	_, recs := deviceJournal(t, d, 10)

	if r := send(t, d, recs[:5]); r.AckedSeq != 5 || r.Stored != 5 || r.Duplicates != 0 || len(r.Raised) != 0 {
		t.Fatalf("first batch: %+v", r)
	}
	if r := send(t, d, recs[:5]); r.AckedSeq != 5 || r.Stored != 0 || r.Duplicates != 5 || len(r.Raised) != 0 {
		t.Fatalf("resent batch: %+v", r)
	}
	if r := send(t, d, recs[2:]); r.AckedSeq != 10 || r.Stored != 5 || r.Duplicates != 3 {
		t.Fatalf("overlapping batch: %+v", r)
	}
	page := listEvents(t, ts, "", "device="+d.id)
	if len(page.Events) != 10 {
		t.Fatalf("stored %d events, want 10", len(page.Events))
	}
	for i, se := range page.Events {
		want := recs[9-i]
		if se.Seq != want.Seq || se.Hash != want.Hash || se.PrevHash != want.PrevHash || se.Source != "device" {
			t.Fatalf("event %d = %+v, want record %d", i, se, want.Seq)
		}
		ev, err := events.Decode(se.Event)
		if err != nil {
			t.Fatalf("stored event does not decode: %v", err)
		}
		if ev.ServerTime == nil || ev.DeviceTime.IsZero() || ev.Seq != want.Seq {
			t.Fatalf("event %d lacks device or server time: %+v", i, ev)
		}
		// Without server_time the event is the record the device hashed.
		ev.ServerTime = nil
		b, _ := ev.Marshal()
		if journal.RecordHash(se.Seq, se.PrevHash, b) != se.Hash {
			t.Errorf("event %d no longer matches its record hash", i)
		}
	}
}

func TestEventsGapAndChainBreakRaised(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	d := enroll(t, ts, ts.EnrollToken(t, 1, ""), "ev-2")
	_, recs := deviceJournal(t, d, 8)
	send(t, d, recs[:3])

	// Records 4 and 5 never arrive.
	r := send(t, d, recs[5:7])
	if r.AckedSeq != 7 || r.Stored != 2 || fmt.Sprint(r.Raised) != "[journal.gap]" {
		t.Fatalf("batch after a gap: %+v", r)
	}
	// Record 8 claims to follow a different record 7.
	bad := recs[7]
	bad.PrevHash = strings.Repeat("ab", 32)
	bad.Hash = journal.RecordHash(bad.Seq, bad.PrevHash, bad.Event)
	r = send(t, d, []api.EventRecord{bad})
	if r.AckedSeq != 8 || r.Stored != 1 || fmt.Sprint(r.Raised) != "[journal.chain_broken]" {
		t.Fatalf("broken link: %+v", r)
	}
	// Records 2 and 3 resent with other content (a reset or altered
	// journal): one event names the first.
	var alts []api.EventRecord
	prev := recs[0].Hash
	for seq := uint64(2); seq <= 3; seq++ {
		ev, _ := events.New(events.TypeConfigChange, d.id, events.SeverityInformational, time.Now(), events.ConfigChange{Setting: "x", Source: "local"})
		ev.Seq = seq
		data, _ := ev.Marshal()
		alt := api.EventRecord{Seq: seq, PrevHash: prev, Event: data}
		alt.Hash = journal.RecordHash(seq, alt.PrevHash, data)
		alts, prev = append(alts, alt), alt.Hash
	}
	r = send(t, d, alts)
	if r.AckedSeq != 8 || r.Stored != 0 || r.Duplicates != 2 || fmt.Sprint(r.Raised) != "[journal.chain_broken]" {
		t.Fatalf("altered resend: %+v", r)
	}

	gaps := listEvents(t, ts, "", "device="+d.id+"&type=journal.gap")
	if len(gaps.Events) != 1 || gaps.Events[0].Source != "server" {
		t.Fatalf("gap events: %+v", gaps.Events)
	}
	g, err := events.Decode(gaps.Events[0].Event)
	if err != nil {
		t.Fatal(err)
	}
	if gd := g.Details.(*events.JournalGap); gd.FromSeq != 4 || gd.ToSeq != 5 || gd.Reason != "missing" || g.DeviceID != d.id {
		t.Fatalf("gap details: %+v", gd)
	}
	broken := listEvents(t, ts, "", "device="+d.id+"&type=journal.chain_broken")
	var reasons []string
	for _, se := range broken.Events {
		e, err := events.Decode(se.Event)
		if err != nil {
			t.Fatal(err)
		}
		reasons = append(reasons, e.Details.(*events.JournalChainBroken).Reason)
	}
	if fmt.Sprint(reasons) != "[resent_record_differs prev_hash_mismatch]" {
		t.Fatalf("chain_broken reasons (newest first): %v", reasons)
	}
	if all := listEvents(t, ts, "", "device="+d.id+"&limit=100"); len(all.Events) != 9 { // 3+2+1 records, 3 raised
		t.Fatalf("%d events stored, want 9", len(all.Events))
	}
}

func TestEventsCheckpointVerified(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	d := enroll(t, ts, ts.EnrollToken(t, 1, ""), "ev-3")
	j, recs := deviceJournal(t, d, 4)
	cp, err := j.Checkpoint(d.key)
	if err != nil {
		t.Fatal(err)
	}
	wire := &api.JournalCheckpoint{DeviceID: cp.DeviceID, Seq: cp.Seq, Hash: cp.Hash, Time: cp.Time, Signature: cp.Signature}
	if _, err := d.client.SendEvents(context.Background(), &api.EventBatch{Records: recs, Checkpoint: wire}); err != nil {
		t.Fatal(err)
	}
	h, err := ts.Store().GetEventHead(context.Background(), d.id)
	if err != nil || h.CheckpointSeq != 4 || h.CheckpointHash != recs[3].Hash {
		t.Fatalf("head = %+v, %v", h, err)
	}
	// A checkpoint signed by another key is refused with the batch.
	other, _ := deviceJournal(t, d, 1)
	forged, _ := other.Checkpoint(newKey(t))
	_, err = d.client.SendEvents(context.Background(), &api.EventBatch{Records: recs, Checkpoint: &api.JournalCheckpoint{
		DeviceID: forged.DeviceID, Seq: forged.Seq, Hash: forged.Hash, Time: forged.Time, Signature: forged.Signature}})
	wantCode(t, err, 400, "bad_checkpoint")
}

// postEvents sends body as d to the events endpoint.
func postEvents(t *testing.T, ts *servertest.Server, d *device, body []byte) (int, api.Error) {
	t.Helper()
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ts.Roots, MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{*d.cert}}}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Post(ts.URL+api.PathEvents, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e api.Error
	json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e
}

func TestEventsBadInput(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	tok := ts.EnrollToken(t, 2, "")
	d := enroll(t, ts, tok, "ev-4")
	other := enroll(t, ts, tok, "ev-5")
	_, recs := deviceJournal(t, d, 3)
	_, otherRecs := deviceJournal(t, other, 1)
	batch := func(f func(rs []api.EventRecord) []api.EventRecord) []byte {
		rs := append([]api.EventRecord(nil), recs...)
		b, _ := json.Marshal(api.EventBatch{Records: f(rs)})
		return b
	}
	rehash := func(r *api.EventRecord) { r.Hash = journal.RecordHash(r.Seq, r.PrevHash, r.Event) }
	many := make([]api.EventRecord, api.MaxEventBatch+1)
	for i := range many {
		many[i] = api.EventRecord{Seq: uint64(i + 1), Hash: strings.Repeat("0", 64), Event: json.RawMessage(`{}`)}
	}
	big, _ := json.Marshal(api.EventBatch{Records: []api.EventRecord{{Seq: 1, Hash: strings.Repeat("0", 64), Event: json.RawMessage(`{"x":"` + strings.Repeat("a", api.MaxEventsBody) + `"}`)}}})
	for _, tc := range []struct {
		name   string
		body   []byte
		status int
		code   string
		msg    string
	}{
		{"oversized", big, 413, "too_large", "larger than"},
		{"not JSON", []byte(`{"records":`), 400, "bad_request", "malformed"},
		{"unknown field", []byte(`{"records":[],"extra":1}`), 400, "bad_request", "unknown field"},
		{"empty", batch(func(rs []api.EventRecord) []api.EventRecord { return nil }), 400, "bad_request", "records is empty"},
		{"too many", mustJSON(api.EventBatch{Records: many}), 400, "bad_request", "more than 500"},
		{"out of order", batch(func(rs []api.EventRecord) []api.EventRecord { return []api.EventRecord{rs[1], rs[0]} }), 400, "bad_request", "increasing seq"},
		{"wrong schema", batch(func(rs []api.EventRecord) []api.EventRecord {
			rs[1].Event = json.RawMessage(strings.Replace(string(rs[1].Event), `"schema_version":"1"`, `"schema_version":"2"`, 1))
			rehash(&rs[1])
			return rs
		}), 400, "invalid_event", "records[1].event: schema_version"},
		{"unknown detail field", batch(func(rs []api.EventRecord) []api.EventRecord {
			rs[2].Event = json.RawMessage(strings.Replace(string(rs[2].Event), `"details":{`, `"details":{"evil":1,`, 1))
			rehash(&rs[2])
			return rs
		}), 400, "invalid_event", "unknown field"},
		{"wrong device", batch(func(rs []api.EventRecord) []api.EventRecord { return otherRecs }), 400, "wrong_device", "records[0].event.device_id"},
		{"altered record", batch(func(rs []api.EventRecord) []api.EventRecord {
			rs[2].Event = json.RawMessage(strings.Replace(string(rs[2].Event), "user2", "user9", 1))
			return rs
		}), 400, "hash_mismatch", "records[2].hash"},
		{"seq differs from event", batch(func(rs []api.EventRecord) []api.EventRecord {
			rs[0].Seq = 7
			rehash(&rs[0])
			return rs[:1]
		}), 400, "invalid_event", "seq"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, e := postEvents(t, ts, d, tc.body)
			if status != tc.status || e.Code != tc.code || !strings.Contains(e.Message, tc.msg) {
				t.Fatalf("got %d %s %q, want %d %s containing %q", status, e.Code, e.Message, tc.status, tc.code, tc.msg)
			}
		})
	}
	// Nothing of any refused batch was stored, not even its good records.
	if _, err := ts.Store().GetEventHead(context.Background(), d.id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("head after refused batches: %v", err)
	}
	if page := listEvents(t, ts, "", ""); len(page.Events) != 0 {
		t.Fatalf("%d events stored from refused batches", len(page.Events))
	}
	// Without a client certificate the endpoint is closed.
	resp, err := ts.HTTP.Post(ts.URL+api.PathEvents, "application/json", bytes.NewReader(batch(func(rs []api.EventRecord) []api.EventRecord { return rs })))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("no client certificate: %d", resp.StatusCode)
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func TestEventsSearchScopedAndExport(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	for _, g := range []string{"lab", "plant"} {
		ts.Do(t, "POST", "/api/v1/groups", "", api.Group{Name: g}, nil)
	}
	lab := enroll(t, ts, ts.EnrollToken(t, 1, "lab"), "lab-1")
	plant := enroll(t, ts, ts.EnrollToken(t, 1, "plant"), "plant-1")
	_, labRecs := deviceJournal(t, lab, 5)
	_, plantRecs := deviceJournal(t, plant, 3)
	send(t, lab, labRecs)
	send(t, plant, plantRecs)
	var tok api.APIToken
	if code := ts.Do(t, "POST", "/api/v1/tokens", "", api.APITokenCreate{Name: "lab-aud", Role: api.RoleAuditor, Group: "lab"}, &tok); code != 201 {
		t.Fatalf("token: %d", code)
	}
	labAud := tok.Token

	if page := listEvents(t, ts, labAud, ""); len(page.Events) != 5 {
		t.Fatalf("lab auditor sees %d events, want 5", len(page.Events))
	}
	if page := listEvents(t, ts, labAud, "group=plant"); len(page.Events) != 0 {
		t.Fatalf("lab auditor sees %d plant events", len(page.Events))
	}
	if code := ts.Do(t, "GET", "/api/v1/events?device="+plant.id, labAud, nil, nil); code != 404 {
		t.Fatalf("lab auditor asking for a plant device: %d, want 404", code)
	}
	if page := listEvents(t, ts, "", "group=plant"); len(page.Events) != 3 {
		t.Fatalf("admin sees %d plant events", len(page.Events))
	}
	if page := listEvents(t, ts, "", "severity=high"); len(page.Events) != 0 {
		t.Fatalf("severity=high matched %d medium events", len(page.Events))
	}
	if page := listEvents(t, ts, "", "severity=medium&since="+url.QueryEscape(time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))); len(page.Events) != 8 {
		t.Fatalf("since an hour ago: %d events", len(page.Events))
	}
	if page := listEvents(t, ts, "", "until=2000-01-01T00:00:00Z"); len(page.Events) != 0 {
		t.Fatalf("until 2000: %d events", len(page.Events))
	}
	// Paging with the cursor walks every event once.
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		page := listEvents(t, ts, "", "limit=3&cursor="+cursor)
		for _, e := range page.Events {
			key := fmt.Sprintf("%s/%d", e.DeviceID, e.Seq)
			if seen[key] {
				t.Fatalf("event %s on two pages", key)
			}
			seen[key] = true
		}
		if cursor = page.NextCursor; cursor == "" || pages > 5 {
			break
		}
	}
	if len(seen) != 8 {
		t.Fatalf("paging saw %d events, want 8", len(seen))
	}
	for _, q := range []string{"type=nope", "severity=loud", "since=yesterday", "limit=5000", "cursor=abc"} {
		if code := ts.Do(t, "GET", "/api/v1/events?"+q, "", nil, nil); code != 400 {
			t.Errorf("GET /api/v1/events?%s: %d, want 400", q, code)
		}
	}

	// Export: JSON lines, oldest first, scoped the same way.
	req, _ := http.NewRequest("GET", ts.URL+"/api/v1/events/export", nil)
	req.Header.Set("Authorization", "Bearer "+labAud)
	resp, err := ts.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("export: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	sc := bufio.NewScanner(resp.Body)
	var seqs []uint64
	for sc.Scan() {
		ev, err := events.Decode(sc.Bytes())
		if err != nil {
			t.Fatalf("export line does not decode: %v: %s", err, sc.Text())
		}
		if ev.DeviceID != lab.id || ev.ServerTime == nil {
			t.Fatalf("export line: %+v", ev)
		}
		seqs = append(seqs, ev.Seq)
	}
	if fmt.Sprint(seqs) != "[1 2 3 4 5]" {
		t.Fatalf("exported seqs %v", seqs)
	}
}
