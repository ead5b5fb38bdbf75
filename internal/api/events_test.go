package api

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

const (
	testHash1 = "1111111111111111111111111111111111111111111111111111111111111111"
	testHash2 = "2222222222222222222222222222222222222222222222222222222222222222"
)

// TestDecodeEventBatch checks that bodies in the agent's form take the
// fast path and decode exactly as the general decoder decodes them, and
// that everything else still decodes (or fails) as before.
func TestDecodeEventBatch(t *testing.T) {
	ev := `{"schema_version":"1","type":"net.connection","details":{"a":[1,-2.5e3,true,false,null,"x\"\\\u00e9"],"b":{}}}`
	agent, err := json.Marshal(EventBatch{Records: []EventRecord{
		{Seq: 1, Hash: testHash1, Event: json.RawMessage(ev)},
		{Seq: 2, PrevHash: testHash1, Hash: testHash2, Event: json.RawMessage(`{"k":"v"}`)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		body string
		fast bool   // takes the fast path
		err  string // from DecodeEventBatch, "" for none
	}{
		{"agent form", string(agent), true, ""},
		{"null checkpoint", strings.TrimSuffix(string(agent), "}") + `,"checkpoint":null}`, true, ""},
		{"empty records", `{"records":[]}`, true, ""},
		{"whitespace inside an event", `{"records":[{"seq":1,"prev_hash":"","hash":"h","event":{ "a" : [ 1 , 2 ] }}]}`, true, ""},
		{"indented", "{\n \"records\": []\n}", false, ""},
		{"members reordered", `{"records":[{"prev_hash":"","seq":1,"hash":"h","event":{}}]}`, false, ""},
		{"escaped hash", `{"records":[{"seq":1,"prev_hash":"","hash":"\u0068","event":{}}]}`, false, ""},
		{"with a checkpoint", `{"records":[],"checkpoint":{"device_id":"d","seq":1,"hash":"h","time":"2026-11-26T20:00:00Z","sig":"AA=="}}`, false, ""},
		{"seq with a fraction", `{"records":[{"seq":1.0,"prev_hash":"","hash":"h","event":{}}]}`, false, `field "records.seq": expected uint64`},
		{"seq leading zero", `{"records":[{"seq":01,"prev_hash":"","hash":"h","event":{}}]}`, false, "malformed JSON"},
		{"seq overflows", `{"records":[{"seq":18446744073709551616,"prev_hash":"","hash":"h","event":{}}]}`, false, "expected uint64"},
		{"event not closed", `{"records":[{"seq":1,"prev_hash":"","hash":"h","event":{"a":1}]}`, false, "malformed JSON"},
		{"bad escape in event", `{"records":[{"seq":1,"prev_hash":"","hash":"h","event":{"a":"\q"}}]}`, false, "malformed JSON"},
		{"bad number in event", `{"records":[{"seq":1,"prev_hash":"","hash":"h","event":{"a":-}}]}`, false, "malformed JSON"},
		{"unknown member", `{"records":[],"extra":1}`, false, "unknown field"},
		{"trailing data", `{"records":[]}{}`, false, "trailing data"},
		{"not UTF-8", "{\"records\":[{\"seq\":1,\"prev_hash\":\"\",\"hash\":\"h\",\"event\":{\"a\":\"\xff\"}}]}", false, "not valid UTF-8"},
		{"empty", ``, false, "empty body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(tc.body)
			_, fast := decodeEventBatchFast(data)
			if fast != tc.fast && utf8.Valid(data) {
				t.Errorf("fast path taken: %v, want %v", fast, tc.fast)
			}
			got, err := DecodeEventBatch(data, MaxEventsBody)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				if _, ok := err.(*DecodeError); !ok {
					t.Fatalf("error of type %T", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var want EventBatch
			if err := DecodeBytes(data, MaxEventsBody, &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, want) {
				t.Fatalf("decoded %+v, the general decoder %+v", *got, want)
			}
		})
	}
	big := []byte(`{"records":[` + strings.Repeat(`{"seq":1,"prev_hash":"","hash":"h","event":{}},`, 10) + `{"seq":1,"prev_hash":"","hash":"h","event":{}}]}`)
	if _, err := DecodeEventBatch(big, int64(len(big)-1)); err == nil || !err.(*DecodeError).TooLarge {
		t.Fatalf("over the limit: %v", err)
	}
}

// FuzzDecodeEventBatch checks that the fast path of DecodeEventBatch
// accepts only what the general decoder accepts, with the same result,
// and that bad input is a *DecodeError, never a panic.
func FuzzDecodeEventBatch(f *testing.F) {
	b, _ := json.Marshal(EventBatch{Records: []EventRecord{
		{Seq: 1, Hash: testHash1, Event: json.RawMessage(`{"schema_version":"1","type":"net.connection","seq":1,"details":{"src_port":1,"x":[null,true,false,"\u00e9\n"]}}`)},
		{Seq: 2, PrevHash: testHash1, Hash: testHash2, Event: json.RawMessage(`{"a":-1.5e-3}`)},
	}})
	f.Add(b)
	f.Add([]byte(`{"records":[],"checkpoint":null}`))
	f.Add([]byte(`{"records":[{"seq":1,"prev_hash":"","hash":"h","event":{ "a" : [ 1 , 2 ] }}]}`))
	f.Add([]byte(`{"records":[{"seq":01,"prev_hash":"","hash":"h","event":{}}]}`))
	f.Add([]byte(`{"records":[{"seq":1,"prev_hash":"","hash":"h","event":{"a":"\ud800"}}]}`))
	f.Add([]byte(`{"records":[{"seq":1,"prev_hash":"","hash":"h","event":` + strings.Repeat(`{"a":`, 70) + `1` + strings.Repeat(`}`, 70) + `}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := DecodeEventBatch(body, MaxEventsBody)
		if err != nil {
			if _, ok := err.(*DecodeError); !ok {
				t.Fatalf("decode error of type %T", err)
			}
		}
		if !utf8.Valid(body) {
			return
		}
		fast, ok := decodeEventBatchFast(body)
		if !ok {
			return
		}
		var want EventBatch
		if err := DecodeBytes(body, MaxEventsBody, &want); err != nil {
			t.Fatalf("fast path accepted what the general decoder refuses (%v): %q", err, body)
		}
		if !reflect.DeepEqual(*fast, want) || !reflect.DeepEqual(*got, want) {
			t.Fatalf("fast path decoded %+v, the general decoder %+v", *fast, want)
		}
	})
}

// BenchmarkDecodeEventBatch compares the fast path with the general
// decoder on a full batch of realistic events.
func BenchmarkDecodeEventBatch(b *testing.B) {
	recs := make([]EventRecord, MaxEventBatch)
	for i := range recs {
		ev := fmt.Sprintf(`{"schema_version":"1","type":"net.connection","class_uid":4001,"class_name":"Network Activity","severity_id":1,"severity":"Informational","device_id":"dev_0123456789abcdef","seq":%d,"device_time":"2026-11-26T20:00:00.001Z","details":{"protocol":"tcp","direction":"outbound","src_ip":"192.0.2.10","src_port":%d,"dst_ip":"198.51.100.20","dst_port":443,"community_id":"1:LQU9qZlK+B5F3KDmev6m5PMibrg=","process":{"pid":812,"path":"/usr/bin/curl","user":"app"}}}`, i+1, i)
		recs[i] = EventRecord{Seq: uint64(i + 1), PrevHash: testHash1, Hash: testHash2, Event: json.RawMessage(ev)}
	}
	body, _ := json.Marshal(EventBatch{Records: recs})
	b.Run("fast", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, err := DecodeEventBatch(body, MaxEventsBody); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*MaxEventBatch), "ns/event")
	})
	b.Run("general", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			var out EventBatch
			if err := DecodeBytes(body, MaxEventsBody, &out); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*MaxEventBatch), "ns/event")
	})
}
