package ioc

import (
	"net/netip"
	"unsafe"
)

// Batch holds observations to be matched together by Matcher.MatchBatch,
// which works out where every lookup will read and touches all those
// places, level by level, before doing the lookups, so that their cache
// misses overlap. That can pay when many lookups hit (0-30 % less CPU per
// lookup with half of them hitting, docs/benchmarks.md); when nearly all
// miss, a single lookup reads one cached word and the batch's bookkeeping
// costs more than it saves. The results are those of the single-lookup
// methods. Typical use, once per batch of events:
//
//	b.Reset()
//	for each event { q := b.AddIP(addr); ... remember what q refers to }
//	m.MatchBatch(&b)
//	for each query q { for _, in := range b.Result(q) { ... } }
//
// A Batch can be reused (Reset keeps its memory); it is not safe for
// concurrent use.
type Batch struct {
	qs   []batchQuery
	res  []Indicator
	ends []int // ends[i] is len(res) after the results of query i
	sink uint32

	// Scratch of MatchBatch for the domain queries of one chunk: the names
	// in lower case and one probe per name or parent looked up.
	names []byte
	dom   []domainProbe
}

type domainProbe struct {
	off, len int32 // of the name looked up, in names
	h        uint64
	slot     int32 // where its fingerprint was found, or -1
}

type queryKind uint8

const (
	qNone queryKind = iota // matches nothing (invalid input)
	qIP4
	qIP6
	qDomain
	qDigest
)

type batchQuery struct {
	kind queryKind
	n    uint8 // digest length in bytes, or domain probes
	lo   int32 // first domain probe
	cid  int32 // IPv4: most specific CIDR prefix, or -1
	h    uint64
	k4   uint32
	k6   u128
	dig  [32]byte
	name string
}

// batchChunk is how many queries are touched before being looked up: enough
// to overlap many misses, few enough that the lines touched stay in the L1
// and L2 caches until their lookup.
const batchChunk = 32

// Reset empties b, keeping its memory.
func (b *Batch) Reset() {
	b.qs, b.res, b.ends = b.qs[:0], b.res[:0], b.ends[:0]
}

// Len returns the number of queries in b.
func (b *Batch) Len() int { return len(b.qs) }

// AddIP adds a query for the indicators MatchIP would return for a and
// returns its index.
func (b *Batch) AddIP(a netip.Addr) int {
	q := batchQuery{}
	if a.IsValid() {
		a = a.Unmap()
		if a.Is4() {
			q.kind, q.k4 = qIP4, addr4Key(a)
		} else {
			q.kind, q.k6 = qIP6, addrKey(a)
		}
	}
	b.qs = append(b.qs, q)
	return len(b.qs) - 1
}

// AddDomain adds a query for the indicators MatchDomain would return for
// name and returns its index. b keeps name until Reset.
func (b *Batch) AddDomain(name string) int {
	b.qs = append(b.qs, batchQuery{kind: qDomain, name: name})
	return len(b.qs) - 1
}

// AddHash adds a query for the indicators MatchHash would return for
// digest and returns its index.
func (b *Batch) AddHash(digest string) int {
	q := batchQuery{}
	if n := len(digest) / 2; (n == 32 || n == 20 || n == 16) && decodeHex(q.dig[:n], digest) {
		q.kind, q.n = qDigest, uint8(n)
	}
	b.qs = append(b.qs, q)
	return len(b.qs) - 1
}

// Result returns the indicators matching query i after MatchBatch, in the
// order the single-lookup method would return them; nil if none. The slice
// is b's and valid until b is next reset or matched.
func (b *Batch) Result(i int) []Indicator {
	start := 0
	if i > 0 {
		start = b.ends[i-1]
	}
	if start == b.ends[i] {
		return nil
	}
	return b.res[start:b.ends[i]:b.ends[i]]
}

// MatchBatch matches every query of b, replacing any earlier results;
// read them with b.Result. The results are those of the single-lookup
// methods at the time of the call.
func (m *Matcher) MatchBatch(b *Batch) {
	b.res, b.ends = b.res[:0], b.ends[:0]
	var sink uint32
	for lo := 0; lo < len(b.qs); lo += batchChunk {
		qs := b.qs[lo:min(lo+batchChunk, len(b.qs))]
		b.names, b.dom = b.names[:0], b.dom[:0]
		// Each pass reads what the previous one touched and touches the
		// next level (bucket, then key and indicator), so that the misses
		// of a level overlap across the chunk instead of following one
		// another lookup by lookup. Only the last pass decides anything.
		for i := range qs {
			q := &qs[i]
			switch q.kind {
			case qIP4:
				q.h = m.h.u32(q.k4)
				sink += m.ip4.touch(q.h)
				if len(m.cidr4.seg4) > 0 {
					sink += m.cidr4.idx4[q.k4>>16]
				}
			case qIP6:
				q.h = m.h.u128(q.k6)
				sink += m.ip6.touch(q.h)
			case qDigest:
				q.h = m.h.digest(q.dig[:q.n])
				switch q.n {
				case 32:
					sink += m.sha256.touch(q.h)
				case 20:
					sink += m.sha1.touch(q.h)
				default:
					sink += m.md5.touch(q.h)
				}
			case qDomain:
				var buf [253]byte
				var offs [127]uint8
				name, n := m.domainSuffixes(&buf, &offs, q.name)
				q.lo, q.n = int32(len(b.dom)), uint8(n)
				base := len(b.names)
				b.names = append(b.names, name...)
				for _, off := range offs[:n] {
					k := unsafe.String(&name[off], len(name)-int(off))
					h := m.h.str(k)
					b.dom = append(b.dom, domainProbe{off: int32(base) + int32(off), len: int32(len(k)), h: h})
					if len(k) <= maxShortName {
						sink += m.domains.touch(h)
					} else {
						sink += m.longDom.touch(h)
					}
				}
			}
		}
		if len(m.cidr4.seg4) > 0 { // the first IPv4 range in each query's /16
			for i := range qs {
				if q := &qs[i]; q.kind == qIP4 {
					sink += m.cidr4.seg4[min(int(m.cidr4.idx4[q.k4>>16]), len(m.cidr4.seg4)-1)].start
				}
			}
		}
		for i := range qs {
			q := &qs[i]
			var v uint32 = emptyVal
			var s uint32
			switch q.kind {
			case qIP4:
				v, _, s = m.ip4.touchSlot(q.h, q.k4)
				q.cid = -1
				if len(m.cidr4.seg4) > 0 {
					q.cid = m.cidr4.lookup4(q.k4)
					if q.cid >= 0 {
						s += uint32(m.cidr4.pfx[q.cid].head)
					}
				}
			case qIP6:
				v, _, s = m.ip6.touchSlot(q.h, fpOf(q.h))
			case qDigest:
				switch q.n {
				case 32:
					v, _, s = m.sha256.touchSlot(q.h, fpOf(q.h))
				case 20:
					v, _, s = m.sha1.touchSlot(q.h, fpOf(q.h))
				default:
					v, _, s = m.md5.touchSlot(q.h, fpOf(q.h))
				}
			case qDomain:
				for j := range int(q.n) {
					p := &b.dom[int(q.lo)+j]
					var pv uint32
					var slot int
					if p.len <= maxShortName {
						pv, slot, s = m.domains.touchSlot(p.h, fpOf(p.h))
					} else {
						pv, slot, s = m.longDom.touchSlot(p.h, fpOf(p.h))
					}
					sink += s + m.touchVal(pv)
					p.slot = int32(slot)
				}
			}
			sink += s + m.touchVal(v)
		}
		for i := range qs {
			switch q := &qs[i]; q.kind {
			case qIP4:
				if q.cid >= 0 {
					sink += m.touchInd(m.cidr4.pfx[q.cid].head)
				}
			case qDomain:
				for _, p := range b.dom[q.lo : q.lo+int32(q.n)] {
					if p.slot >= 0 && p.len > maxShortName { // the text of a long name
						if k := m.longDom.keys[p.slot]; len(k) > 0 {
							sink += uint32(k[0])
						}
					}
				}
			}
		}
		for i := range qs {
			q := &qs[i]
			switch q.kind {
			case qIP4:
				b.res = m.appendIP4Prefix(b.res, q.k4, q.h, q.cid)
			case qIP6:
				b.res = m.appendIP6(b.res, q.k6, q.h)
			case qDigest:
				b.res = m.appendDigest(b.res, int(q.n), &q.dig, q.h)
			case qDomain:
				c := matchCtx{m: m}
				for _, p := range b.dom[q.lo : q.lo+int32(q.n)] {
					k := unsafe.String(&b.names[p.off], int(p.len))
					b.res = c.domain(b.res, k, p.h)
				}
			}
			b.ends = append(b.ends, len(b.res))
		}
	}
	b.sink = sink
}

// touchVal touches what a lookup finding table value v will read next:
// the indicator, or the group of a chain. v is emptyVal if nothing was
// found.
func (m *Matcher) touchVal(v uint32) uint32 {
	switch {
	case v == emptyVal:
		return 0
	case v&groupBit == 0:
		return m.touchInd(int32(v))
	default:
		return uint32(m.groups[v&^groupBit].head)
	}
}

// touchInd touches both cache lines an Indicator can span.
func (m *Matcher) touchInd(id int32) uint32 {
	if id < 0 {
		return 0
	}
	p := unsafe.Pointer(&m.inds[id])
	return uint32(*(*uint8)(p)) + uint32(*(*uint8)(unsafe.Add(p, unsafe.Sizeof(Indicator{})-1)))
}
