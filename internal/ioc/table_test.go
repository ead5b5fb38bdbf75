package ioc

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestTableRandom fills tables with weak hashes that force fingerprint
// collisions, full buckets, probing across buckets and wrap-around, and
// compares every lookup with a map.
func TestTableRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for round := range 200 {
		n := r.IntN(300)
		universe := uint64(1 + r.IntN(2*n+10))
		spread := uint64(1 + r.IntN(8)) // distinct high hash halves
		fps := uint64(1 + r.IntN(4))    // distinct fingerprints
		tags := uint64(1 + r.IntN(3))   // distinct summary tags (0 becomes 1)
		hash := func(k uint64) uint64 { return (k%spread)<<60 | (k/3%tags)<<32 | k%fps }
		var tb table[uint64]
		tb.init(n, false)
		var groups []group
		next := map[int32]int32{}
		ref := map[uint64][]int32{} // ids, most recent first
		exp := map[uint64]bool{}
		for id := range int32(n) {
			k := r.Uint64N(universe)
			e := r.IntN(5) == 0
			h := hash(k)
			prev := tb.put(h, fpOf(h), k, id, e, &groups)
			want := int32(-1)
			if l := ref[k]; len(l) > 0 {
				want = l[0]
			}
			if prev != want {
				t.Fatalf("round %d: put(%d) returned %d, want %d", round, k, prev, want)
			}
			next[id] = prev
			ref[k] = append([]int32{id}, ref[k]...)
			exp[k] = exp[k] || e
		}
		if tb.n != len(ref) {
			t.Fatalf("round %d: n = %d, want %d", round, tb.n, len(ref))
		}
		for k := range universe + 5 {
			h := hash(k)
			v, ok := tb.get(h, fpOf(h), k)
			want := ref[k]
			if ok != (len(want) > 0) {
				t.Fatalf("round %d: get(%d) ok = %v, want %v", round, k, ok, !ok)
			}
			if !ok {
				continue
			}
			var got []int32
			switch {
			case v&groupBit == 0:
				got = []int32{int32(v)}
				if len(want) != 1 || exp[k] {
					t.Fatalf("round %d: key %d with %d indicators (expiring %v) stored inline", round, k, len(want), exp[k])
				}
			default:
				g := groups[v&^groupBit]
				if g.expires != exp[k] {
					t.Fatalf("round %d: key %d expires = %v, want %v", round, k, g.expires, exp[k])
				}
				for id := g.head; id >= 0; id = next[id] {
					got = append(got, id)
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("round %d: key %d: chain %v, want %v", round, k, got, want)
			}
		}
	}
}

// refMatcher is the obvious implementation of the Matcher's rules: scan
// every indicator.
type refMatcher struct {
	inds []Indicator
	now  time.Time
	memo map[string][]Indicator
}

// memoized returns f(), computed once per key.
func (r *refMatcher) memoized(key string, f func() []Indicator) []Indicator {
	if v, ok := r.memo[key]; ok {
		return v
	}
	if r.memo == nil {
		r.memo = map[string][]Indicator{}
	}
	v := f()
	r.memo[key] = v
	return v
}

func (r *refMatcher) live(in Indicator) bool { return !in.Expired(r.now) }

// newestFirst returns the live indicators that pass keep, most recently
// added first.
func (r *refMatcher) newestFirst(keep func(Indicator) bool) []Indicator {
	var out []Indicator
	for i := len(r.inds) - 1; i >= 0; i-- {
		if in := r.inds[i]; keep(in) && r.live(in) {
			out = append(out, in)
		}
	}
	return out
}

func (r *refMatcher) ip(a netip.Addr) []Indicator {
	return r.memoized("ip "+a.String(), func() []Indicator { return r.ip1(a) })
}

func (r *refMatcher) ip1(a netip.Addr) []Indicator {
	if !a.IsValid() {
		return nil
	}
	a = a.Unmap()
	out := r.newestFirst(func(in Indicator) bool {
		return in.Type == TypeIP && netip.MustParseAddr(in.Value) == a
	})
	cidrs := r.newestFirst(func(in Indicator) bool {
		return in.Type == TypeCIDR && netip.MustParsePrefix(in.Value).Contains(a)
	})
	bits := func(in Indicator) int { return netip.MustParsePrefix(in.Value).Bits() }
	slices.SortStableFunc(cidrs, func(x, y Indicator) int { return bits(y) - bits(x) })
	return append(out, cidrs...)
}

func (r *refMatcher) domain(name string) []Indicator {
	return r.memoized("domain "+name, func() []Indicator { return r.domain1(name) })
}

func (r *refMatcher) domain1(name string) []Indicator {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if name == "" || len(name) > 253 {
		return nil
	}
	var out []Indicator
	for {
		out = append(out, r.newestFirst(func(in Indicator) bool { return in.Type == TypeDomain && in.Value == name })...)
		i := strings.IndexByte(name, '.')
		if i < 0 {
			return out
		}
		name = name[i+1:]
	}
}

func (r *refMatcher) hash(d string) []Indicator {
	return r.memoized("hash "+d, func() []Indicator { return r.hash1(d) })
}

func (r *refMatcher) hash1(d string) []Indicator {
	d = strings.ToLower(d)
	return r.newestFirst(func(in Indicator) bool {
		return (in.Type == TypeSHA256 || in.Type == TypeSHA1 || in.Type == TypeMD5) && in.Value == d
	})
}

// randomIndicators draws n indicators of every matchable type from small
// universes, so that keys repeat, prefixes nest and some expire.
func randomIndicators(r *rand.Rand, n int, t0 time.Time) (inds []Indicator, ips []netip.Addr, domains, hashes []string) {
	ip4 := func() netip.Addr {
		return netip.AddrFrom4([4]byte{10, byte(r.IntN(3)), byte(r.IntN(4)), byte(r.IntN(8))})
	}
	ip6 := func() netip.Addr {
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(r.IntN(8))})
	}
	labels := []string{"a", "b", "example", "com", "org", "a-label-of-twenty-ch"} // some names longer than maxShortName
	dom := func() string {
		parts := make([]string, 1+r.IntN(4))
		for i := range parts {
			parts[i] = labels[r.IntN(len(labels))]
		}
		return strings.Join(parts, ".")
	}
	hex := func() string {
		b := make([]byte, []int{16, 20, 32}[r.IntN(3)])
		b[0] = byte(r.IntN(3))
		return fmt.Sprintf("%x", b)
	}
	for i := range n {
		var typ Type
		var v string
		switch r.IntN(6) {
		case 0:
			typ, v = TypeIP, ip4().String()
		case 1:
			typ, v = TypeIP, ip6().String()
		case 2:
			if r.IntN(2) == 0 {
				typ, v = TypeCIDR, netip.PrefixFrom(ip4(), 8+r.IntN(24)).Masked().String()
			} else {
				typ, v = TypeCIDR, netip.PrefixFrom(ip6(), 16+r.IntN(112)).Masked().String()
			}
		case 3, 4:
			typ, v = TypeDomain, dom()
		default:
			typ, v = TypeSHA256, hex()
			switch len(v) {
			case 40:
				typ = TypeSHA1
			case 32:
				typ = TypeMD5
			}
		}
		var exp time.Time
		switch r.IntN(4) {
		case 0:
			exp = t0.Add(time.Duration(r.IntN(7)-3) * time.Minute)
		}
		in, err := New(typ, v, "src", fmt.Sprint(i), exp)
		if err != nil {
			panic(err)
		}
		inds = append(inds, in)
	}
	for range 200 {
		ips = append(ips, ip4(), ip6(), netip.IPv6Unspecified(), netip.AddrFrom4([4]byte{192, 0, 2, 1}))
		d := dom()
		domains = append(domains, d, strings.ToUpper(d)+".", "x."+d)
		hashes = append(hashes, hex(), strings.ToUpper(hex()))
	}
	ips = append(ips, netip.Addr{}, netip.MustParseAddr("::ffff:10.1.2.3"))
	domains = append(domains, "", ".", strings.Repeat("a.", 130)+"com")
	hashes = append(hashes, "", "zz", strings.Repeat("0", 64))
	return inds, ips, domains, hashes
}

// TestMatcherRandom compares the Matcher with refMatcher on random
// indicator sets, before and after some of them expire, one lookup at a
// time and in batches.
func TestMatcherRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var batch Batch
	for round := range 40 {
		inds, ips, domains, hashes := randomIndicators(r, r.IntN(400), t0)
		clk := &fakeClock{t: t0}
		m, err := Build(inds, clk.Now)
		if err != nil {
			t.Fatal(err)
		}
		for _, at := range []time.Duration{-time.Hour, 0, 2 * time.Minute, time.Hour} {
			clk.Set(t0.Add(at))
			ref := &refMatcher{inds: inds, now: clk.Now()}
			check := func(what string, got, want []Indicator) {
				t.Helper()
				if !slices.Equal(got, want) {
					t.Fatalf("round %d at %v: %s = %v, want %v", round, at, what, refs(got), refs(want))
				}
			}
			for _, a := range ips {
				check("MatchIP("+a.String()+")", m.MatchIP(a), ref.ip(a))
			}
			for _, d := range domains {
				check("MatchDomain("+d+")", m.MatchDomain(d), ref.domain(d))
			}
			for _, h := range hashes {
				check("MatchHash("+h+")", m.MatchHash(h), ref.hash(h))
			}

			// The same queries, mixed, in one batch (reused across rounds).
			type query struct {
				what string
				want []Indicator
			}
			var qs []query
			batch.Reset()
			add := func(i int, what string, want []Indicator) {
				if i != len(qs) {
					t.Fatalf("Add returned %d, want %d", i, len(qs))
				}
				qs = append(qs, query{what, want})
			}
			for i := range max(len(ips), len(domains), len(hashes)) {
				if i < len(ips) {
					add(batch.AddIP(ips[i]), "batch IP "+ips[i].String(), ref.ip(ips[i]))
				}
				if i < len(domains) {
					add(batch.AddDomain(domains[i]), "batch domain "+domains[i], ref.domain(domains[i]))
				}
				if i < len(hashes) {
					add(batch.AddHash(hashes[i]), "batch hash "+hashes[i], ref.hash(hashes[i]))
				}
			}
			m.MatchBatch(&batch)
			if batch.Len() != len(qs) {
				t.Fatalf("batch Len = %d, want %d", batch.Len(), len(qs))
			}
			for i, q := range qs {
				check(q.what, batch.Result(i), q.want)
			}
		}
	}
}

// TestDigestHashUsesAllBytes checks that digests differing only in their
// last bytes (a feed can list many such) spread over the table.
func TestDigestHashUsesAllBytes(t *testing.T) {
	for _, n := range []int{16, 20, 32} {
		var inds []Indicator
		var keys [][]byte
		for i := range 1000 {
			b := make([]byte, n)
			b[n-2], b[n-1] = byte(i>>8), byte(i)
			keys = append(keys, b)
			typ := map[int]Type{16: TypeMD5, 20: TypeSHA1, 32: TypeSHA256}[n]
			inds = append(inds, Indicator{Type: typ, Value: fmt.Sprintf("%x", b), Ref: fmt.Sprint(i)})
		}
		m, err := Build(inds, nil)
		if err != nil {
			t.Fatal(err)
		}
		var tb table[struct{}] // the size of the tables built
		tb.init(len(keys), true)
		homes := map[int]bool{}
		for _, k := range keys {
			homes[tb.home(m.h.digest(k))] = true
		}
		if len(homes) < 100 {
			t.Errorf("%d-byte digests sharing a prefix start at %d buckets of %d", n, len(homes), len(tb.b))
		}
		for i, in := range inds {
			if got := m.MatchHash(in.Value); len(got) != 1 || got[0].Ref != fmt.Sprint(i) {
				t.Fatalf("MatchHash(%s) = %v", in.Value, got)
			}
		}
	}
}
