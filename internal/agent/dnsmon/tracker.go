package dnsmon

import (
	"errors"
	"net/netip"
	"time"

	"github.com/bulwark-iot/bulwark/internal/communityid"
)

// pairKey identifies a query and its response.
type pairKey struct {
	client, server netip.AddrPort
	id             uint16
}

type queued struct {
	key pairKey
	q   *Query
}

// tracker pairs queries with responses. It is not safe for concurrent
// use.
type tracker struct {
	timeout    time.Duration
	maxPending int
	seed       uint16
	owner      func(client, server netip.AddrPort) Process // nil: not looked up
	h          Handler

	pending map[pairKey]*Query
	queue   []queued // in arrival order; entries whose query was answered are stale
}

func newTracker(cfg Config, h Handler, owner func(client, server netip.AddrPort) Process) *tracker {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	return &tracker{timeout: cfg.Timeout, maxPending: cfg.MaxPending, seed: cfg.CommunityIDSeed, owner: owner, h: h, pending: map[pairKey]*Query{}}
}

// packet handles one captured IP packet.
func (t *tracker) packet(b []byte, now time.Time) {
	p, err := ParsePacket(b)
	switch {
	case errors.Is(err, ErrFragment):
		t.h.Lost(LostFragment, 1)
		return
	case err != nil:
		t.h.Lost(LostMalformed, 1)
		return
	}
	t.datagram(p, now)
}

// datagram handles one UDP datagram on a DNS port.
func (t *tracker) datagram(p Packet, now time.Time) {
	m, err := ParseMessage(p.Payload)
	if err != nil {
		t.h.Lost(LostMalformed, 1)
		return
	}
	if m.Opcode != 0 {
		t.h.Lost(LostNotQuery, 1)
		return
	}
	if !m.Response {
		k := pairKey{p.Src, p.Dst, m.ID}
		if _, dup := t.pending[k]; dup {
			return // a retransmission: the same query
		}
		if len(t.pending) >= t.maxPending {
			t.evictOldest()
		}
		q := t.newQuery(now, p.Src, p.Dst, m)
		q.QuerySeen = true
		t.pending[k] = q
		t.queue = append(t.queue, queued{k, q})
		if len(t.queue) > 4*t.maxPending {
			t.compact()
		}
		return
	}
	k := pairKey{p.Dst, p.Src, m.ID}
	q, ok := t.pending[k]
	if ok && q.Name == m.Name && q.Type == m.Type {
		delete(t.pending, k)
	} else {
		// A response to a query not seen (or to another question): it
		// is reported on its own.
		q = t.newQuery(now, p.Dst, p.Src, m)
	}
	q.Answered, q.RCode, q.Truncated, q.AnswerCount = true, m.RCode, m.Truncated, m.AnswerCount
	q.Answers = m.Answers
	t.h.Query(q)
}

func (t *tracker) newQuery(now time.Time, client, server netip.AddrPort, m *Message) *Query {
	client = netip.AddrPortFrom(client.Addr().Unmap(), client.Port())
	server = netip.AddrPortFrom(server.Addr().Unmap(), server.Port())
	q := &Query{Time: now, Client: client, Server: server, ID: m.ID, Name: m.Name, Type: m.Type}
	q.CommunityID, _ = communityid.ID(t.seed, communityid.Tuple{
		Proto: 17, SrcIP: client.Addr(), DstIP: server.Addr(), SrcPort: client.Port(), DstPort: server.Port(),
	})
	if t.owner != nil {
		q.Process = t.owner(client, server)
	}
	return q
}

// expire reports the queries that waited longer than the timeout.
func (t *tracker) expire(now time.Time) {
	for len(t.queue) > 0 {
		e := t.queue[0]
		if t.pending[e.key] == e.q {
			if now.Sub(e.q.Time) < t.timeout {
				break
			}
			delete(t.pending, e.key)
			t.h.Query(e.q)
		}
		t.queue[0] = queued{}
		t.queue = t.queue[1:]
	}
	if len(t.queue) == 0 {
		t.queue = nil // let the array go
	}
}

// evictOldest reports the oldest pending query unanswered.
func (t *tracker) evictOldest() {
	for len(t.queue) > 0 {
		e := t.queue[0]
		t.queue[0] = queued{}
		t.queue = t.queue[1:]
		if t.pending[e.key] == e.q {
			delete(t.pending, e.key)
			t.h.Query(e.q)
			return
		}
	}
}

// compact drops the stale entries of the queue.
func (t *tracker) compact() {
	q := make([]queued, 0, len(t.pending))
	for _, e := range t.queue {
		if t.pending[e.key] == e.q {
			q = append(q, e)
		}
	}
	t.queue = q
}

// flush reports every pending query unanswered, oldest first.
func (t *tracker) flush() {
	for _, e := range t.queue {
		if t.pending[e.key] == e.q {
			delete(t.pending, e.key)
			t.h.Query(e.q)
		}
	}
	t.queue = nil
}
