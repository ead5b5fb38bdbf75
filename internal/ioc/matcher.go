package ioc

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unsafe"
)

// Matcher answers whether an observation matches an indicator. It is an
// immutable snapshot, safe for concurrent use; build a new one (or use a
// Set) when the indicators change.
//
// Exact addresses, domains and hashes are looked up in bucketised hash
// tables (see table), URLs in a map; CIDR prefixes are flattened into
// sorted, disjoint ranges searched by binary search, each range pointing at
// its most specific prefix. Expired indicators never match: expiry is
// checked at match time against the clock given to Build. MatchBatch
// matches many observations at once, overlapping their memory reads.
type Matcher struct {
	now  func() time.Time
	inds []Indicator
	exp  []int64 // Expires as Unix nanoseconds; 0 = never
	next []int32 // next indicator with the same key; -1 ends the chain

	h       hasher
	groups  []group // chains of keys with several indicators or expiring ones
	ip4     table[uint32]
	ip6     table[u128]
	cidr4   rangeTable
	cidr6   rangeTable
	domains table[shortName] // names of up to 31 bytes, held inline
	longDom table[string]    // longer names
	labels  [2]uint64        // bit n: some domain indicator has n labels (n < 128)
	urls    map[string]int32
	sha256  table[[32]byte]
	sha1    table[[20]byte]
	md5     table[[16]byte]
}

type u128 struct{ hi, lo uint64 }

func (a u128) cmp(b u128) int {
	if c := cmp.Compare(a.hi, b.hi); c != 0 {
		return c
	}
	return cmp.Compare(a.lo, b.lo)
}

func (a u128) inc() u128 {
	lo := a.lo + 1
	hi := a.hi
	if lo == 0 {
		hi++
	}
	return u128{hi, lo}
}

func addrKey(a netip.Addr) u128 {
	b := a.As16()
	return u128{be64(b[:8]), be64(b[8:])}
}

func be64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}

func addr4Key(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// rangeTable maps disjoint address ranges to the most specific covering
// prefix. Range i starts at seg[i].start and runs up to the next range's
// start (the last to the end of the address space); its prefix is
// seg[i].id, or -1 for none. IPv4 tables use seg4, IPv6 tables seg6.
type rangeTable struct {
	seg4 []seg4
	// idx4[t] is the index of the first range starting at or after t<<16,
	// so a lookup only searches the ranges starting in its /16.
	idx4 []uint32
	seg6 []seg6
	pfx  []prefixInfo
}

type seg4 struct {
	start uint32
	id    int32
}

type seg6 struct {
	start u128
	id    int32
}

type prefixInfo struct {
	head    int32 // first indicator
	parent  int32 // enclosing prefix, or -1
	expires bool  // some indicator of this prefix can expire
}

type prefixEntry struct {
	start, end u128
	head       int32
	expires    bool
}

// build fills t from prefixes with distinct ranges; max is the last address
// of the family.
func (t *rangeTable) build(ps []prefixEntry, v4 bool, max u128) {
	slices.SortFunc(ps, func(a, b prefixEntry) int {
		if c := a.start.cmp(b.start); c != 0 {
			return c
		}
		return b.end.cmp(a.end) // enclosing prefix first
	})
	t.pfx = make([]prefixInfo, len(ps))
	var starts []u128
	var ids []int32
	emit := func(s u128, id int32) {
		if n := len(starts); n > 0 && starts[n-1] == s {
			ids[n-1] = id
			if n > 1 && ids[n-2] == id {
				starts, ids = starts[:n-1], ids[:n-1]
			}
			return
		}
		if n := len(ids); n > 0 && ids[n-1] == id {
			return
		}
		starts = append(starts, s)
		ids = append(ids, id)
	}
	var stack []int32
	top := func() int32 {
		if len(stack) == 0 {
			return -1
		}
		return stack[len(stack)-1]
	}
	pop := func() {
		e := ps[top()].end
		stack = stack[:len(stack)-1]
		if e != max {
			emit(e.inc(), top())
		}
	}
	for i, p := range ps {
		for len(stack) > 0 && ps[top()].end.cmp(p.start) < 0 {
			pop()
		}
		t.pfx[i] = prefixInfo{head: p.head, parent: top(), expires: p.expires}
		emit(p.start, int32(i))
		stack = append(stack, int32(i))
	}
	for len(stack) > 0 {
		pop()
	}
	if v4 {
		t.seg4 = make([]seg4, len(starts))
		for i, s := range starts {
			t.seg4[i] = seg4{uint32(s.lo), ids[i]}
		}
		t.idx4 = make([]uint32, 1<<16+1)
		j := 0
		for b := 0; b <= 1<<16; b++ {
			for j < len(t.seg4) && uint64(t.seg4[j].start) < uint64(b)<<16 {
				j++
			}
			t.idx4[b] = uint32(j)
		}
	} else {
		t.seg6 = make([]seg6, len(starts))
		for i, s := range starts {
			t.seg6[i] = seg6{s, ids[i]}
		}
	}
}

// lookup4 returns the most specific prefix containing x, or -1.
func (t *rangeTable) lookup4(x uint32) int32 {
	s := t.seg4
	b := x >> 16
	lo, hi := int(t.idx4[b]), int(t.idx4[b+1]) // find the first start > x
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s[m].start <= x {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 {
		return -1
	}
	return s[lo-1].id
}

func (t *rangeTable) lookup6(x u128) int32 {
	s := t.seg6
	lo, hi := 0, len(s)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s[m].start.cmp(x) <= 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 {
		return -1
	}
	return s[lo-1].id
}

// Build returns a Matcher over inds, which must be valid as made by New or
// the parsers. now is the clock used for expiry (nil means time.Now); it is
// called from concurrent matches and only when a candidate can expire.
func Build(inds []Indicator, now func() time.Time) (*Matcher, error) {
	if now == nil {
		now = time.Now
	}
	m := &Matcher{
		now:  now,
		inds: make([]Indicator, 0, len(inds)),
		exp:  make([]int64, 0, len(inds)),
		next: make([]int32, 0, len(inds)),
		h:    newHasher(),
		urls: map[string]int32{},
	}
	if len(inds) > 1<<31-1 {
		return nil, fmt.Errorf("ioc: build matcher: %d indicators: %w", len(inds), ErrTooLarge)
	}
	if hugePages {
		adviseHuge(m.inds, false)
		adviseHuge(m.exp, false)
		adviseHuge(m.next, false)
	}
	type pfxChain struct {
		head    int32
		expires bool
	}
	pfx := map[netip.Prefix]pfxChain{}
	// Keys are gathered first so that each table is sized once.
	var (
		p4i   []item[uint32]
		p6i   []item[u128]
		pd    []item[shortName]
		pdl   []item[string]
		ps256 []item[[32]byte]
		ps1   []item[[20]byte]
		pmd5  []item[[16]byte]
	)
	for i, in := range inds {
		id := int32(len(m.inds))
		var head int32 = -1
		var ok bool
		var exp int64
		if !in.Expires.IsZero() {
			exp = in.Expires.UnixNano()
			if exp == 0 {
				exp = 1
			}
		}
		canExpire := exp != 0
		bad := func() (*Matcher, error) {
			return nil, fmt.Errorf("ioc: build matcher: indicator %d: invalid %s value %q", i, clip(string(in.Type)), clip(in.Value))
		}
		switch in.Type {
		case TypeIP, TypeCIDR:
			var p netip.Prefix
			if in.Type == TypeIP {
				a, err := netip.ParseAddr(in.Value)
				if err != nil {
					return bad()
				}
				a = a.Unmap().WithZone("")
				p = netip.PrefixFrom(a, a.BitLen())
			} else {
				var err error
				if p, err = parsePrefix(in.Value); err != nil {
					return bad()
				}
			}
			switch {
			case p.IsSingleIP() && p.Addr().Is4():
				k := addr4Key(p.Addr())
				p4i = append(p4i, item[uint32]{m.h.u32(k), k, k, id, canExpire})
			case p.IsSingleIP():
				k := addrKey(p.Addr())
				h := m.h.u128(k)
				p6i = append(p6i, item[u128]{h, fpOf(h), k, id, canExpire})
			default:
				var pc pfxChain
				pc, ok = pfx[p]
				head = pc.head
				pfx[p] = pfxChain{id, pc.expires || canExpire}
			}
		case TypeDomain:
			d, valid := normalizeDomain(in.Value)
			if !valid {
				return bad()
			}
			if h := m.h.str(d); len(d) <= maxShortName {
				pd = append(pd, item[shortName]{h, fpOf(h), makeShortName(d), id, canExpire})
			} else {
				pdl = append(pdl, item[string]{h, fpOf(h), d, id, canExpire})
			}
			if n := strings.Count(d, ".") + 1; n < 128 {
				m.labels[n/64] |= 1 << (n % 64)
			}
		case TypeURL:
			u, err := NormalizeURL(in.Value)
			if err != nil {
				return bad()
			}
			head, ok = m.urls[u]
			m.urls[u] = id
		case TypeSHA256:
			var k [32]byte
			if !decodeHex(k[:], in.Value) {
				return bad()
			}
			h := m.h.digest(k[:])
			ps256 = append(ps256, item[[32]byte]{h, fpOf(h), k, id, canExpire})
		case TypeSHA1:
			var k [20]byte
			if !decodeHex(k[:], in.Value) {
				return bad()
			}
			h := m.h.digest(k[:])
			ps1 = append(ps1, item[[20]byte]{h, fpOf(h), k, id, canExpire})
		case TypeMD5:
			var k [16]byte
			if !decodeHex(k[:], in.Value) {
				return bad()
			}
			h := m.h.digest(k[:])
			pmd5 = append(pmd5, item[[16]byte]{h, fpOf(h), k, id, canExpire})
		default:
			return bad()
		}
		if !ok {
			head = -1
		}
		m.inds = append(m.inds, in)
		m.exp = append(m.exp, exp)
		m.next = append(m.next, head)
	}
	fill(&m.ip4, p4i, true, m)
	fill(&m.ip6, p6i, false, m)
	fill(&m.domains, pd, false, m)
	fill(&m.longDom, pdl, false, m)
	fill(&m.sha256, ps256, false, m)
	fill(&m.sha1, ps1, false, m)
	fill(&m.md5, pmd5, false, m)
	var p4, p6 []prefixEntry
	for p, pc := range pfx {
		lo := p.Masked().Addr()
		if p.Addr().Is4() {
			b := lo.As4()
			v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
			v |= uint32(uint64(1)<<(32-p.Bits()) - 1)
			p4 = append(p4, prefixEntry{start: u128{0, uint64(addr4Key(lo))}, end: u128{0, uint64(v)}, head: pc.head, expires: pc.expires})
			continue
		}
		s := addrKey(lo)
		e := s
		bits := 128 - p.Bits()
		switch {
		case bits >= 64:
			e.lo = ^uint64(0)
			if bits == 128 {
				e.hi = ^uint64(0)
			} else {
				e.hi |= uint64(1)<<(bits-64) - 1
			}
		default:
			e.lo |= uint64(1)<<bits - 1
		}
		p6 = append(p6, prefixEntry{start: s, end: e, head: pc.head, expires: pc.expires})
	}
	m.cidr4.build(p4, true, u128{0, 1<<32 - 1})
	m.cidr6.build(p6, false, u128{^uint64(0), ^uint64(0)})
	if hugePages {
		m.adviseHuge()
	}
	return m, nil
}

// hugePages enables adviseHuge for the matcher's arrays (tests turn it off
// to measure the difference).
var hugePages = true

// adviseHuge asks for the matcher's large arrays to be kept in huge pages,
// now: every lookup reads a few random lines of them.
func (m *Matcher) adviseHuge() {
	adviseHuge(m.inds, true)
	adviseHuge(m.exp, true)
	adviseHuge(m.next, true)
	adviseHuge(m.groups, true)
	adviseHuge(m.ip4.b, true)
	adviseHuge(m.ip6.b, true)
	adviseHuge(m.ip6.keys, true)
	adviseHuge(m.domains.b, true)
	adviseHuge(m.domains.keys, true)
	adviseHuge(m.longDom.b, true)
	adviseHuge(m.longDom.keys, true)
	adviseHuge(m.sha256.b, true)
	adviseHuge(m.sha256.keys, true)
	adviseHuge(m.sha1.b, true)
	adviseHuge(m.sha1.keys, true)
	adviseHuge(m.md5.b, true)
	adviseHuge(m.md5.keys, true)
	for _, t := range []*rangeTable{&m.cidr4, &m.cidr6} {
		adviseHuge(t.seg4, true)
		adviseHuge(t.idx4, true)
		adviseHuge(t.seg6, true)
		adviseHuge(t.pfx, true)
	}
}

// item is a key waiting to be put in a table by Build.
type item[K comparable] struct {
	h   uint64
	fp  uint32
	k   K
	id  int32
	exp bool
}

// fill builds t from items, in indicator order, linking each indicator to
// the previous one with the same key.
func fill[K comparable](t *table[K], items []item[K], exact bool, m *Matcher) {
	t.init(len(items), exact)
	for _, it := range items {
		m.next[it.id] = t.put(it.h, it.fp, it.k, it.id, it.exp, &m.groups)
	}
}

// Len returns the number of indicators in m, expired or not.
func (m *Matcher) Len() int { return len(m.inds) }

// matchCtx collects live indicators along chains, reading the clock at
// most once and only if some candidate can expire.
type matchCtx struct {
	m      *Matcher
	now    int64
	nowSet bool
}

// chain appends the live indicators of the chain starting at id; exp tells
// whether any of them can expire (if not, expiry times are not read).
func (c *matchCtx) chain(dst []Indicator, id int32, exp bool) []Indicator {
	m := c.m
	for ; id >= 0; id = m.next[id] {
		if !exp {
			dst = append(dst, m.inds[id])
			continue
		}
		if e := m.exp[id]; e != 0 {
			if !c.nowSet {
				c.now, c.nowSet = m.now().UnixNano(), true
			}
			if c.now >= e {
				continue
			}
		}
		dst = append(dst, m.inds[id])
	}
	return dst
}

// val appends the live indicators of a table value.
func (c *matchCtx) val(dst []Indicator, v uint32) []Indicator {
	if v&groupBit == 0 {
		return append(dst, c.m.inds[v])
	}
	g := &c.m.groups[v&^groupBit]
	return c.chain(dst, g.head, g.expires)
}

// MatchIP returns the live indicators matching a: exact addresses first,
// then CIDR prefixes from the most to the least specific. IPv4-mapped IPv6
// addresses match as IPv4. It returns nil when nothing matches.
func (m *Matcher) MatchIP(a netip.Addr) []Indicator { return m.AppendIP(nil, a) }

// AppendIP appends the result of MatchIP to dst; with a reused dst it does
// not allocate.
func (m *Matcher) AppendIP(dst []Indicator, a netip.Addr) []Indicator {
	if !a.IsValid() {
		return dst
	}
	a = a.Unmap()
	if a.Is4() {
		k := addr4Key(a)
		return m.appendIP4(dst, k, m.h.u32(k))
	}
	k := addrKey(a)
	return m.appendIP6(dst, k, m.h.u128(k))
}

// appendIP4 is AppendIP for the IPv4 address k with hash h.
func (m *Matcher) appendIP4(dst []Indicator, k uint32, h uint64) []Indicator {
	id := int32(-1)
	if len(m.cidr4.seg4) > 0 {
		id = m.cidr4.lookup4(k)
	}
	return m.appendIP4Prefix(dst, k, h, id)
}

// appendIP4Prefix is appendIP4 given id = m.cidr4.lookup4(k), or -1 if
// there are no IPv4 prefixes.
func (m *Matcher) appendIP4Prefix(dst []Indicator, k uint32, h uint64, id int32) []Indicator {
	c := matchCtx{m: m}
	if v, ok := m.ip4.get(h, k, k); ok {
		dst = c.val(dst, v)
	}
	for id >= 0 {
		p := &m.cidr4.pfx[id]
		dst = c.chain(dst, p.head, p.expires)
		id = p.parent
	}
	return dst
}

// appendIP6 is AppendIP for the IPv6 address k with hash h.
func (m *Matcher) appendIP6(dst []Indicator, k u128, h uint64) []Indicator {
	c := matchCtx{m: m}
	if v, ok := m.ip6.get(h, fpOf(h), k); ok {
		dst = c.val(dst, v)
	}
	if len(m.cidr6.seg6) == 0 {
		return dst
	}
	for id := m.cidr6.lookup6(k); id >= 0; {
		p := &m.cidr6.pfx[id]
		dst = c.chain(dst, p.head, p.expires)
		id = p.parent
	}
	return dst
}

// MatchDomain returns the live indicators for name and each of its parent
// domains (an indicator example.com matches a.b.example.com), the most
// specific first. Case and one trailing dot are ignored.
func (m *Matcher) MatchDomain(name string) []Indicator { return m.AppendDomain(nil, name) }

// AppendDomain appends the result of MatchDomain to dst without allocating
// when dst has room.
func (m *Matcher) AppendDomain(dst []Indicator, name string) []Indicator {
	var buf [253]byte
	var offs [127]uint8
	b, n := m.domainSuffixes(&buf, &offs, name)
	c := matchCtx{m: m}
	for _, off := range offs[:n] {
		// b lives on this stack frame and is not changed while k is in
		// use; the table only compares k, never keeps it.
		k := unsafe.String(&b[off], len(b)-int(off))
		dst = c.domain(dst, k, m.h.str(k))
	}
	return dst
}

// domain appends the live indicators of the domain k with hash h.
func (c *matchCtx) domain(dst []Indicator, k string, h uint64) []Indicator {
	var v uint32
	var ok bool
	if len(k) <= maxShortName {
		v, ok = c.m.domains.get(h, fpOf(h), makeShortName(k))
	} else {
		v, ok = c.m.longDom.get(h, fpOf(h), k)
	}
	if ok {
		dst = c.val(dst, v)
	}
	return dst
}

// maxShortName is the longest domain name kept in a shortName.
const maxShortName = 31

// shortName holds a domain name of up to 31 bytes inline, so that
// confirming a fingerprint match reads the key from the table's key array
// rather than following a pointer to it: one cache miss fewer per hit.
type shortName struct {
	b [maxShortName]byte
	n uint8
}

func makeShortName(s string) (k shortName) {
	k.n = uint8(copy(k.b[:], s))
	return k
}

// domainSuffixes writes name, lower-case and less one trailing dot, to
// buf and returns it with, in offs[:n], the offsets at which AppendDomain
// looks it up: name and each parent, skipping label counts that no
// indicator has.
func (m *Matcher) domainSuffixes(buf *[253]byte, offs *[127]uint8, name string) (b []byte, n int) {
	if len(name) > 0 && name[len(name)-1] == '.' {
		name = name[:len(name)-1]
	}
	if len(name) == 0 || len(name) > 253 || len(m.domains.b)+len(m.longDom.b) == 0 {
		return nil, 0
	}
	b = buf[:len(name)]
	var dots [253]uint8
	nd := lowerDomainInto(b, &dots, name)
	// Suffix j starts after dot j-1 and has nd+1-j labels.
	for j := 0; j <= nd; j++ {
		off := 0
		if j > 0 {
			off = int(dots[j-1]) + 1
		}
		if off == len(b) {
			break
		}
		if labels := nd + 1 - j; labels < 128 && m.labels[labels/64]&(1<<(labels%64)) != 0 {
			offs[n] = uint8(off)
			n++
		}
	}
	return b, n
}

// MatchURL returns the live indicators for the URL, compared after
// NormalizeURL. An invalid URL matches nothing.
func (m *Matcher) MatchURL(rawURL string) []Indicator {
	u, err := NormalizeURL(rawURL)
	if err != nil {
		return nil
	}
	c := matchCtx{m: m}
	if head, ok := m.urls[u]; ok {
		return c.chain(nil, head, true)
	}
	return nil
}

// MatchHash returns the live indicators for a hex MD5, SHA-1 or SHA-256
// digest (either case), told apart by length.
func (m *Matcher) MatchHash(digest string) []Indicator { return m.AppendHash(nil, digest) }

// AppendHash appends the result of MatchHash to dst without allocating when
// dst has room.
func (m *Matcher) AppendHash(dst []Indicator, digest string) []Indicator {
	var k [32]byte
	n := len(digest) / 2
	if n != 32 && n != 20 && n != 16 || !decodeHex(k[:n], digest) {
		return dst
	}
	return m.appendDigest(dst, n, &k, m.h.digest(k[:n]))
}

// appendDigest is AppendHash for the n-byte digest k (unused bytes zero)
// with hash h; an n other than 32, 20 or 16 matches nothing.
func (m *Matcher) appendDigest(dst []Indicator, n int, k *[32]byte, h uint64) []Indicator {
	var v uint32
	var ok bool
	switch n {
	case 32:
		v, ok = m.sha256.get(h, fpOf(h), *k)
	case 20:
		v, ok = m.sha1.get(h, fpOf(h), [20]byte(k[:20]))
	case 16:
		v, ok = m.md5.get(h, fpOf(h), [16]byte(k[:16]))
	}
	if !ok {
		return dst
	}
	c := matchCtx{m: m}
	return c.val(dst, v)
}
