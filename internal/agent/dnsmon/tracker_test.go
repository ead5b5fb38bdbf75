package dnsmon

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent/dnsmon/dnstest"
)

var epoch = time.Date(2026, 11, 26, 20, 0, 0, 0, time.UTC)

// recorder is a Handler that keeps what it is given.
type recorder struct {
	queries []Query
	lost    map[string]uint64
}

func (r *recorder) Query(q *Query) { r.queries = append(r.queries, *q) }
func (r *recorder) Lost(reason string, n uint64) {
	if r.lost == nil {
		r.lost = map[string]uint64{}
	}
	r.lost[reason] += n
}

func TestTrackerPairs(t *testing.T) {
	var r recorder
	owner := func(c, _ netip.AddrPort) Process {
		if c == client4 {
			return Process{PID: 812, Exe: "/usr/bin/curl", User: "app"}
		}
		return Process{}
	}
	tr := newTracker(Config{Timeout: 5 * time.Second, MaxPending: 3}, &r, owner)
	q1 := dnstest.Query(0xbeef, "www.example.com", dnstest.TypeA)
	tr.packet(ipPacket(client4, server4, q1), epoch)
	tr.packet(ipPacket(client4, server4, q1), epoch.Add(time.Second)) // retransmission
	if len(r.queries) != 0 {
		t.Fatalf("reported before the response: %+v", r.queries)
	}
	tr.packet(ipPacket(server4, client4, realResponse()), epoch.Add(2*time.Second))
	if len(r.queries) != 1 {
		t.Fatalf("%d queries", len(r.queries))
	}
	got := r.queries[0]
	if got.Time != epoch || got.Client != client4 || got.Server != server4 || got.Name != "www.example.com" || got.Type != TypeA ||
		!got.QuerySeen || !got.Answered || got.AnswerCount != 4 || len(got.Answers) != 3 || got.Answers[0].Target != "cdn.example.com" ||
		got.Process.PID != 812 || got.CommunityID != "1:XlkEnIEpGlsxMTHxcQTm/XHq5IM=" {
		t.Fatalf("%+v", got)
	}

	// A query without a response is reported when the timeout passes.
	r.queries = nil
	q2 := dnstest.Query(2, "silent.example", dnstest.TypeAAAA)
	tr.packet(ipPacket(client6, server6, q2), epoch)
	tr.expire(epoch.Add(4 * time.Second))
	if len(r.queries) != 0 {
		t.Fatal("expired early")
	}
	tr.expire(epoch.Add(5 * time.Second))
	if len(r.queries) != 1 || r.queries[0].Answered || r.queries[0].Name != "silent.example" || r.queries[0].Client != client6 {
		t.Fatalf("%+v", r.queries)
	}
	// Its late response is then reported on its own, as is a response
	// to another question.
	r.queries = nil
	tr.packet(ipPacket(server6, client6, dnstest.Response(q2, 0)), epoch.Add(6*time.Second))
	q3 := dnstest.Query(3, "a.example", dnstest.TypeA)
	tr.packet(ipPacket(client4, server4, q3), epoch.Add(6*time.Second))
	tr.packet(ipPacket(server4, client4, dnstest.Response(dnstest.Query(3, "b.example", dnstest.TypeA), 3)), epoch.Add(6*time.Second))
	if len(r.queries) != 2 || r.queries[0].QuerySeen || !r.queries[0].Answered || r.queries[1].Name != "b.example" || r.queries[1].QuerySeen {
		t.Fatalf("%+v", r.queries)
	}

	// Past MaxPending the oldest is reported unanswered; flush reports
	// the rest in order.
	r.queries = nil
	for i := uint16(10); i < 13; i++ {
		tr.packet(ipPacket(client4, server4, dnstest.Query(i, "n.example", dnstest.TypeA)), epoch.Add(7*time.Second))
	}
	if len(r.queries) != 1 || r.queries[0].Name != "a.example" {
		t.Fatalf("eviction: %+v", r.queries)
	}
	tr.flush()
	var ids []uint16
	for _, q := range r.queries[1:] {
		ids = append(ids, q.ID)
	}
	if !reflect.DeepEqual(ids, []uint16{10, 11, 12}) {
		t.Fatalf("flush: %v", ids)
	}
	if len(tr.pending) != 0 || len(tr.queue) != 0 {
		t.Fatal("state left after flush")
	}
}

func TestTrackerCountsLost(t *testing.T) {
	var r recorder
	tr := newTracker(Config{}, &r, nil)
	q := dnstest.Query(1, "a.example", dnstest.TypeA)
	frag := ipPacket(client4, server4, q)
	frag[6] = 0x20
	notify := append([]byte(nil), q...)
	notify[2] = 4 << 3 // opcode NOTIFY
	tr.packet(frag, epoch)
	tr.packet([]byte{0x45}, epoch)
	tr.packet(ipPacket(client4, server4, []byte("not dns")), epoch)
	tr.packet(ipPacket(client4, server4, notify), epoch)
	want := map[string]uint64{LostFragment: 1, LostMalformed: 2, LostNotQuery: 1}
	if !reflect.DeepEqual(r.lost, want) || len(r.queries) != 0 {
		t.Fatalf("lost %v, queries %+v", r.lost, r.queries)
	}
}

// TestTrackerQueueBounded checks that answered queries do not make the
// queue grow without bound.
func TestTrackerQueueBounded(t *testing.T) {
	var r recorder
	tr := newTracker(Config{MaxPending: 8}, &r, nil)
	tr.packet(ipPacket(client4, server4, dnstest.Query(0, "slow.example", dnstest.TypeA)), epoch)
	for i := 1; i < 1000; i++ {
		q := dnstest.Query(uint16(i), "a.example", dnstest.TypeA)
		tr.packet(ipPacket(client4, server4, q), epoch)
		tr.packet(ipPacket(server4, client4, dnstest.Response(q, 0)), epoch)
	}
	if len(tr.queue) > 4*8+1 || len(r.queries) != 999 {
		t.Fatalf("queue %d, %d reported", len(tr.queue), len(r.queries))
	}
}

// BenchmarkTrackerPair measures the monitor's work per DNS exchange once
// a packet is read: parsing the query and its response (a CNAME and two
// addresses) and pairing them, without the owner lookup.
func BenchmarkTrackerPair(b *testing.B) {
	tr := newTracker(Config{}, nopHandler{}, nil)
	q := dnstest.Query(1, "www.example.com", dnstest.TypeA)
	cname := append([]byte{3, 'c', 'd', 'n'}, 0xc0, 12+4)
	r := dnstest.Response(q, 0,
		dnstest.RR{Name: ptrQ, Type: dnstest.TypeCNAME, TTL: 300, RData: cname},
		dnstest.RR{Name: ptrQ, Type: dnstest.TypeA, TTL: 60, RData: dnstest.A("198.51.100.20")},
		dnstest.RR{Name: ptrQ, Type: dnstest.TypeA, TTL: 60, RData: dnstest.A("198.51.100.21")})
	qp, rp := ipPacket(client4, server4, q), ipPacket(server4, client4, r)
	for b.Loop() {
		tr.packet(qp, epoch)
		tr.packet(rp, epoch)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "exchanges/s")
}
