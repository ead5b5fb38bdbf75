package server

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/events"
	"github.com/bulwark-iot/bulwark/internal/ioc"
	"github.com/bulwark-iot/bulwark/internal/store"
)

// BenchmarkMatchBatch measures matching alone: batches of 500
// net.connection events (none matching) against 1,000,000 indicators
// (999,000 addresses, 1,000 prefixes), per event.
func BenchmarkMatchBatch(b *testing.B) {
	inds := make([]ioc.Indicator, 0, 1_000_000)
	for i := 0; i < 999_000; i++ {
		inds = append(inds, ioc.Indicator{Type: ioc.TypeIP, Value: fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255), Source: "bench"})
	}
	for i := 0; i < 1000; i++ {
		inds = append(inds, ioc.Indicator{Type: ioc.TypeCIDR, Value: fmt.Sprintf("172.%d.%d.0/24", 16+i/256, i%256), Source: "bench"})
	}
	m, err := ioc.Build(inds, time.Now)
	if err != nil {
		b.Fatal(err)
	}
	st := &iocState{s: &Server{now: time.Now, log: slog.New(slog.NewTextHandler(io.Discard, nil))}}
	st.matcher.Store(m)
	rows := make([]store.Event, 500)
	for i := range rows {
		ev, err := events.New(events.TypeNetConnection, "dev", events.SeverityInformational, time.Now(),
			events.NetConnection{Protocol: "tcp", Direction: "outbound", SrcIP: "192.0.2.10", SrcPort: 40000 + i, DstIP: fmt.Sprintf("198.51.%d.%d", i/256, i%256), DstPort: 443,
				CommunityID: "1:LQU9qZlK+B5F3KDmev6m5PMibrg=", Process: &events.ProcessRef{PID: 812, Path: "/usr/bin/curl", SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", User: "app"}})
		if err != nil {
			b.Fatal(err)
		}
		ev.Seq = uint64(i + 1)
		data, _ := ev.Marshal()
		rows[i] = store.Event{DeviceID: "dev", Seq: ev.Seq, Type: events.TypeNetConnection, Data: data}
	}
	// CPU time is reported besides events/s: it depends less on what
	// else the machine runs.
	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	b.ResetTimer()
	cpu0 := cpu()
	for b.Loop() {
		st.match("dev", rows, time.Now())
	}
	b.ReportMetric(float64(b.N*len(rows))/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(cpu()-cpu0)/float64(b.N*len(rows)), "cpu-ns/event")
}

// scanCases are envelopes whose matched fields the scanner must read as
// encoding/json does (or decline to read).
var scanCases = []struct {
	name string
	json string
	fast bool // the scanner must take it
}{
	{"outbound", `{"type":"net.connection","seq":3,"details":{"protocol":"tcp","direction":"outbound","src_ip":"192.0.2.10","src_port":1,"dst_ip":"198.51.100.20","dst_port":443,"community_id":"1:x=","process":{"pid":812,"path":"/usr/bin/curl","sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}},"server_time":"2026-11-26T20:00:00Z"}`, true},
	{"indented", "{\n  \"details\" : {\n\t\"direction\" : \"inbound\" ,\r\n \"src_ip\":\"203.0.113.9\" }\n}\n", true},
	{"null process", `{"details":{"dst_ip":"198.51.100.1","process":null}}`, true},
	{"other values first", `{"a":[1,{"b":"}"},"\"{"],"n":-1.5e3,"t":true,"details":{"x":{"y":[[]]},"sha256":"ab"}}`, true},
	{"details not an object", `{"details":null}`, true},
	{"process activity", `{"type":"process.activity","details":{"activity":"launch","process":{"pid":1,"sha256":"cd","path":"/bin/sh"},"ppid":1}}`, true},
	{"upper-case keys", `{"DETAILS":{"Dst_IP":"198.51.100.1","Process":{"SHA256":"ef"}}}`, true},
	{"duplicate keys", `{"details":{"dst_ip":"198.51.100.1","dst_ip":"198.51.100.2"}}`, true},
	{"escaped value", `{"details":{"dst_ip":"198.51.100.\u0031"}}`, false},
	{"escaped key", `{"details":{"dst\u005fip":"198.51.100.1"}}`, false},
	{"escape elsewhere", `{"details":{"path":"C:\\x\"","dst_ip":"198.51.100.1"}}`, true},
	{"long s key", "{\"details\":{\"\u017fha256\":\"ab\"}}", false},
	{"dns query", `{"type":"dns.query","details":{"hostname":"a.evil.example","query_type":"A","transaction_id":1,"rcode":"NoError","answers":[{"type":"CNAME","rdata":"x.cdn.example","ttl":5},{"type":"A","rdata":"198.51.100.7","ttl":5}],"answer_count":2,"protocol":"udp","process":{"pid":1,"sha256":"ab"}}}`, true},
	{"dns no answers", `{"details":{"hostname":"a.example","answers":null}}`, true},
	{"dns empty answers", `{"details":{"answers":[]}}`, true},
	{"dns null answer", `{"details":{"answers":[null,{"type":"A","rdata":"192.0.2.1"}]}}`, true},
	{"dns answers twice", `{"details":{"answers":[{"type":"A","rdata":"192.0.2.1"},{"type":"A","rdata":"192.0.2.2"}],"answers":[{"type":"CNAME"}]}}`, true},
	{"dns answers twice then null", `{"details":{"answers":[{"type":"A","rdata":"192.0.2.1"}],"answers":null}}`, true},
	{"dns too many answers", `{"details":{"answers":[{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{"rdata":"16"},{"rdata":"17"},null]}}`, true},
	{"dns escaped rdata", `{"details":{"answers":[{"type":"A","rdata":"192.0.2.\u0031"}]}}`, false},
	{"dns upper-case keys", `{"details":{"HostName":"a.example","ANSWERS":[{"Type":"A","RDATA":"192.0.2.1"}]}}`, true},
}

func TestScanIoCFields(t *testing.T) {
	for _, tc := range scanCases {
		var want, got iocFields
		if err := json.Unmarshal([]byte(tc.json), &want); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		ok := scanIoCFields([]byte(tc.json), &got)
		if tc.fast && !ok {
			t.Errorf("%s: the scanner declined", tc.name)
		}
		if ok && got != want {
			t.Errorf("%s: scanned %+v, encoding/json %+v", tc.name, got, want)
		}
	}
}

func FuzzScanIoCFields(f *testing.F) {
	for _, tc := range scanCases {
		f.Add([]byte(tc.json))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var want, got iocFields
		if json.Unmarshal(data, &want) != nil {
			return // only valid envelopes reach the scanner
		}
		if scanIoCFields(data, &got) && got != want {
			t.Fatalf("scanned %+v, encoding/json %+v", got, want)
		}
	})
}

// BenchmarkScanIoCFields compares the scanner with encoding/json on a
// typical net.connection envelope.
func BenchmarkScanIoCFields(b *testing.B) {
	data := []byte(scanCases[0].json)
	b.Run("scan", func(b *testing.B) {
		for b.Loop() {
			var f iocFields
			if !scanIoCFields(data, &f) {
				b.Fatal("declined")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			var f iocFields
			if err := json.Unmarshal(data, &f); err != nil {
				b.Fatal(err)
			}
		}
	})
}
