package ioc

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func mustNew(t testing.TB, typ Type, v, ref string, exp time.Time) Indicator {
	t.Helper()
	in, err := New(typ, v, "test", ref, exp)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func refs(inds []Indicator) []string {
	var out []string
	for _, in := range inds {
		out = append(out, in.Ref)
	}
	return out
}

// fakeClock is a settable clock for expiry tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func TestMatcher(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := &fakeClock{t: t0}
	inds := []Indicator{
		mustNew(t, TypeIP, "198.51.100.7", "ip4", time.Time{}),
		mustNew(t, TypeIP, "198.51.100.7", "ip4-dup", t0.Add(time.Hour)),
		mustNew(t, TypeIP, "2001:db8::1", "ip6", time.Time{}),
		mustNew(t, TypeCIDR, "198.51.0.0/16", "c16", time.Time{}),
		mustNew(t, TypeCIDR, "198.51.100.0/24", "c24", time.Time{}),
		mustNew(t, TypeCIDR, "198.51.100.0/28", "c28", t0.Add(time.Minute)),
		mustNew(t, TypeCIDR, "0.0.0.0/0", "all4", t0.Add(-time.Second)), // already expired
		mustNew(t, TypeCIDR, "255.255.255.0/24", "top", time.Time{}),
		mustNew(t, TypeCIDR, "2001:db8::/32", "c6-32", time.Time{}),
		mustNew(t, TypeCIDR, "2001:db8:0:1::/64", "c6-64", time.Time{}),
		mustNew(t, TypeCIDR, "ffff::/16", "c6-top", time.Time{}),
		mustNew(t, TypeDomain, "Example.COM", "dom", time.Time{}),
		mustNew(t, TypeDomain, "b.example.com", "dom-b", time.Time{}),
		mustNew(t, TypeURL, "https://example.com/x?y=1", "url", time.Time{}),
		mustNew(t, TypeSHA256, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "sha256", time.Time{}),
		mustNew(t, TypeSHA1, "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3", "sha1", time.Time{}),
		mustNew(t, TypeMD5, "098f6bcd4621d373cade4e832627b4f6", "md5", time.Time{}),
	}
	m, err := Build(inds, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	if m.Len() != len(inds) {
		t.Errorf("Len = %d", m.Len())
	}
	ip := func(s string) []string { return refs(m.MatchIP(netip.MustParseAddr(s))) }
	tests := []struct {
		name string
		got  []string
		want []string
	}{
		{"exact+cidrs", ip("198.51.100.7"), []string{"ip4-dup", "ip4", "c28", "c24", "c16"}},
		{"mapped", ip("::ffff:198.51.100.7"), []string{"ip4-dup", "ip4", "c28", "c24", "c16"}},
		{"/24 not /28", ip("198.51.100.77"), []string{"c24", "c16"}},
		{"/16 after /24", ip("198.51.101.1"), []string{"c16"}},
		{"below /16", ip("198.50.255.255"), nil},
		{"last address", ip("255.255.255.255"), []string{"top"}},
		{"miss", ip("192.0.2.1"), nil},
		{"ip6 exact", ip("2001:db8::1"), []string{"ip6", "c6-32"}},
		{"ip6 /64", ip("2001:db8:0:1::99"), []string{"c6-64", "c6-32"}},
		{"ip6 after /64", ip("2001:db8:0:2::1"), []string{"c6-32"}},
		{"ip6 top", ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), []string{"c6-top"}},
		{"ip6 miss", ip("2001:db9::1"), nil},
		{"domain exact", refs(m.MatchDomain("example.com")), []string{"dom"}},
		{"domain sub", refs(m.MatchDomain("A.B.Example.com.")), []string{"dom-b", "dom"}},
		{"domain suffix is not a label", refs(m.MatchDomain("notexample.com")), nil},
		{"domain parent", refs(m.MatchDomain("com")), nil},
		{"url", refs(m.MatchURL("HTTPS://EXAMPLE.com:443/x?y=1#f")), []string{"url"}},
		{"url other query", refs(m.MatchURL("https://example.com/x?y=2")), nil},
		{"sha256", refs(m.MatchHash("9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08")), []string{"sha256"}},
		{"sha1", refs(m.MatchHash("a94a8fe5ccb19ba61c4c0873d391e987982fbbd3")), []string{"sha1"}},
		{"md5", refs(m.MatchHash("098f6bcd4621d373cade4e832627b4f6")), []string{"md5"}},
		{"bad hash", refs(m.MatchHash("098f6bcd4621d373cade4e832627b4fz")), nil},
	}
	for _, tt := range tests {
		if !slices.Equal(tt.got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, tt.got, tt.want)
		}
	}

	// Expiry is checked at match time.
	clk.Set(t0.Add(time.Minute))
	if got := ip("198.51.100.7"); !slices.Equal(got, []string{"ip4-dup", "ip4", "c24", "c16"}) {
		t.Errorf("after 1m: %v", got)
	}
	clk.Set(t0.Add(time.Hour))
	if got := ip("198.51.100.7"); !slices.Equal(got, []string{"ip4", "c24", "c16"}) {
		t.Errorf("after 1h: %v", got)
	}
	clk.Set(t0.Add(-time.Hour))
	if got := ip("10.0.0.1"); !slices.Equal(got, []string{"all4"}) {
		t.Errorf("before expiry of 0/0: %v", got)
	}

	if _, err := Build([]Indicator{{Type: TypeIP, Value: "nope"}}, nil); err == nil {
		t.Error("Build accepted an invalid indicator")
	}
}

// TestCIDRRandom compares the range table against a brute-force scan.
func TestCIDRRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 20; round++ {
		var inds []Indicator
		var pfx []netip.Prefix
		n := 1 + r.IntN(300)
		for i := 0; i < n; i++ {
			var p netip.Prefix
			if r.IntN(2) == 0 {
				a := netip.AddrFrom4([4]byte{byte(r.IntN(4)), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))})
				p = netip.PrefixFrom(a, r.IntN(31)).Masked()
			} else {
				var b [16]byte
				b[0] = byte(r.IntN(4))
				for j := 1; j < 16; j++ {
					b[j] = byte(r.IntN(256))
				}
				p = netip.PrefixFrom(netip.AddrFrom16(b), r.IntN(127)).Masked()
			}
			pfx = append(pfx, p)
			inds = append(inds, Indicator{Type: TypeCIDR, Value: p.String(), Ref: fmt.Sprint(i)})
		}
		m, err := Build(inds, nil)
		if err != nil {
			t.Fatal(err)
		}
		for q := 0; q < 2000; q++ {
			var a netip.Addr
			if r.IntN(2) == 0 {
				a = netip.AddrFrom4([4]byte{byte(r.IntN(4)), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))})
			} else {
				var b [16]byte
				b[0] = byte(r.IntN(4))
				for j := 1; j < 16; j++ {
					b[j] = byte(r.IntN(256))
				}
				a = netip.AddrFrom16(b)
			}
			if r.IntN(3) == 0 { // probe a prefix boundary
				p := pfx[r.IntN(len(pfx))]
				a = p.Addr()
				if r.IntN(2) == 0 {
					a = a.Prev()
				}
			}
			if !a.IsValid() {
				continue
			}
			var want []string
			var wantBits []int
			for i, p := range pfx {
				if p.Contains(a) {
					want = append(want, fmt.Sprint(i))
					wantBits = append(wantBits, p.Bits())
				}
			}
			got := m.MatchIP(a)
			gotRefs := refs(got)
			if !sameSet(gotRefs, want) {
				t.Fatalf("round %d: MatchIP(%s) = %v, want %v", round, a, gotRefs, want)
			}
			for i := 1; i < len(got); i++ { // most specific first
				pi, _ := netip.ParsePrefix(got[i-1].Value)
				pj, _ := netip.ParsePrefix(got[i].Value)
				if pi.Bits() < pj.Bits() {
					t.Fatalf("MatchIP(%s) not ordered by specificity: %v", a, got)
				}
			}
		}
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func TestSet(t *testing.T) {
	s := NewSet(nil)
	if s.Matcher().Len() != 0 {
		t.Fatal("new set not empty")
	}
	if _, err := s.Replace("a", []Indicator{mustNew(t, TypeIP, "192.0.2.1", "a1", time.Time{})}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Replace("b", []Indicator{mustNew(t, TypeIP, "192.0.2.1", "b1", time.Time{})}); err != nil {
		t.Fatal(err)
	}
	got := s.Matcher().MatchIP(netip.MustParseAddr("192.0.2.1"))
	if len(got) != 2 || got[0].Source == got[1].Source {
		t.Errorf("two sources: %+v", got)
	}
	if _, err := s.Replace("a", []Indicator{{Type: TypeDomain, Value: "bad domain"}}); err == nil {
		t.Error("Replace accepted an invalid indicator")
	}
	if got := s.Matcher().MatchIP(netip.MustParseAddr("192.0.2.1")); len(got) != 2 {
		t.Errorf("failed Replace changed the set: %+v", got)
	}
	s.Remove("a")
	if got := refs(s.Matcher().MatchIP(netip.MustParseAddr("192.0.2.1"))); !slices.Equal(got, []string{"b1"}) {
		t.Errorf("after Remove: %v", got)
	}
	if !slices.Equal(s.Sources(), []string{"b"}) {
		t.Errorf("Sources = %v", s.Sources())
	}

	// Concurrent readers while the set changes (run with -race).
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				s.Matcher().MatchIP(netip.MustParseAddr("192.0.2.1"))
				s.Matcher().MatchDomain("x.example.com")
			}
		}()
	}
	for i := 0; i < 50; i++ {
		if _, err := s.Replace("c", []Indicator{mustNew(t, TypeDomain, fmt.Sprintf("d%d.example.com", i), "", time.Time{})}); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
}

func TestAppendNoAlloc(t *testing.T) {
	m, err := Build([]Indicator{
		mustNew(t, TypeIP, "192.0.2.1", "", time.Time{}),
		mustNew(t, TypeCIDR, "10.0.0.0/8", "", time.Time{}),
		mustNew(t, TypeDomain, "example.com", "", time.Time{}),
		mustNew(t, TypeSHA256, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "", time.Time{}),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]Indicator, 0, 8)
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("10.1.2.3")
	n := testing.AllocsPerRun(100, func() {
		buf = m.AppendIP(buf[:0], a)
		buf = m.AppendIP(buf[:0], b)
		buf = m.AppendDomain(buf[:0], "WWW.Example.com")
		buf = m.AppendHash(buf[:0], "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
	})
	if n != 0 {
		t.Errorf("allocations per run = %v, want 0", n)
	}
}

// --- 1,000,000-indicator benchmarks ---

type benchData struct {
	m        *Matcher
	ips      []netip.Addr // half listed (exact or inside a CIDR), half not
	domains  []string
	hashes   []string
	build    time.Duration
	heapUsed uint64
}

var (
	benchOnce sync.Once
	bench     benchData
)

// benchIndicators returns 1,000,000 indicators: 400k IPv4, 100k IPv6, 100k
// CIDRs (90k IPv4 /16–/30, 10k IPv6 /32–/64), 200k domains, 200k hashes
// (sha256, sha1, md5), each with a STIX-like ref.
// IPv4 CIDRs are /16–/30, as in blocklists.
func benchIndicators(r *rand.Rand) ([]Indicator, []netip.Addr, []string, []string) {
	inds := make([]Indicator, 0, 1_000_000)
	ref := func(i int) string {
		return fmt.Sprintf("indicator--%08x-0000-4000-8000-%012x", i, r.Uint64()&0xffffffffffff)
	}
	var ips []netip.Addr
	var doms, hashes []string
	add := func(typ Type, v string) {
		inds = append(inds, Indicator{Type: typ, Value: v, Source: "bench", Ref: ref(len(inds))})
	}
	for i := 0; i < 400_000; i++ {
		a := netip.AddrFrom4([4]byte{byte(r.IntN(224)), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))})
		add(TypeIP, a.String())
		if i%4 == 0 {
			ips = append(ips, a)
		}
	}
	for i := 0; i < 100_000; i++ {
		var b [16]byte
		b[0], b[1] = 0x20, 0x01
		for j := 2; j < 16; j++ {
			b[j] = byte(r.IntN(256))
		}
		add(TypeIP, netip.AddrFrom16(b).String())
	}
	for i := 0; i < 90_000; i++ {
		a := netip.AddrFrom4([4]byte{byte(r.IntN(224)), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))})
		p := netip.PrefixFrom(a, 16+r.IntN(15)).Masked()
		add(TypeCIDR, p.String())
	}
	for i := 0; i < 10_000; i++ {
		var b [16]byte
		b[0], b[1] = 0x20, 0x01
		for j := 2; j < 16; j++ {
			b[j] = byte(r.IntN(256))
		}
		add(TypeCIDR, netip.PrefixFrom(netip.AddrFrom16(b), 32+r.IntN(33)).Masked().String())
	}
	for i := 0; i < 200_000; i++ {
		d := fmt.Sprintf("%x-%d.example%d.com", r.Uint32(), i, i%1000)
		add(TypeDomain, d)
		if i%4 == 0 {
			doms = append(doms, "www.cdn."+d)
		}
	}
	for i := 0; i < 200_000; i++ {
		n := []int{64, 64, 40, 32}[i%4]
		b := make([]byte, n/2)
		for j := range b {
			b[j] = byte(r.IntN(256))
		}
		h := fmt.Sprintf("%x", b)
		add(map[int]Type{64: TypeSHA256, 40: TypeSHA1, 32: TypeMD5}[n], h)
		if i%4 == 0 {
			hashes = append(hashes, h)
		}
	}
	// Add as many misses as hits.
	for i, n := 0, len(ips); i < n; i++ {
		ips = append(ips, netip.AddrFrom4([4]byte{byte(r.IntN(224)), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))}))
	}
	for i, n := 0, len(doms); i < n; i++ {
		doms = append(doms, fmt.Sprintf("host%d.unlisted%d.example.org", i, r.IntN(1000)))
	}
	for i, n := 0, len(hashes); i < n; i++ {
		b := make([]byte, 32)
		for j := range b {
			b[j] = byte(r.IntN(256))
		}
		hashes = append(hashes, fmt.Sprintf("%x", b))
	}
	r.Shuffle(len(ips), func(i, j int) { ips[i], ips[j] = ips[j], ips[i] })
	r.Shuffle(len(doms), func(i, j int) { doms[i], doms[j] = doms[j], doms[i] })
	r.Shuffle(len(hashes), func(i, j int) { hashes[i], hashes[j] = hashes[j], hashes[i] })
	return inds, ips, pack(doms), pack(hashes)
}

// pack copies the strings into one contiguous block, in order, so that the
// benchmarks read their queries sequentially (as a packet or log line would
// be in cache) and time the matcher rather than misses on the query text.
func pack(ss []string) []string {
	var b strings.Builder
	for _, s := range ss {
		b.WriteString(s)
	}
	all := b.String()
	out := make([]string, len(ss))
	off := 0
	for i, s := range ss {
		out[i] = all[off : off+len(s)]
		off += len(s)
	}
	return out
}

func benchSetup(b *testing.B) *benchData {
	benchOnce.Do(func() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		inds, ips, doms, hashes := benchIndicators(rand.New(rand.NewPCG(42, 42)))
		start := time.Now()
		m, err := Build(inds, nil)
		if err != nil {
			panic(err)
		}
		bench.build = time.Since(start)
		inds = nil
		runtime.GC()
		runtime.ReadMemStats(&after)
		bench.m, bench.ips, bench.domains, bench.hashes = m, ips, doms, hashes
		// Everything live now that was not before is the matcher (its
		// indicators and their strings) plus the small query lists.
		bench.heapUsed = after.HeapAlloc - before.HeapAlloc
	})
	return &bench
}

func BenchmarkBuild1M(b *testing.B) {
	d := benchSetup(b)
	for b.Loop() {
	}
	b.ReportMetric(d.build.Seconds(), "build-s")
	b.ReportMetric(float64(d.heapUsed)/(1<<20), "matcher-MiB")
	b.ReportMetric(anonHugeMiB(), "thp-MiB")
}

func BenchmarkMatchIP(b *testing.B) {
	d := benchSetup(b)
	buf := make([]Indicator, 0, 16)
	hits := 0
	i := 0
	b.ReportAllocs()
	cpu := startCPU(b)
	for b.Loop() {
		buf = d.m.AppendIP(buf[:0], d.ips[i%len(d.ips)])
		hits += len(buf)
		i++
	}
	cpu.report(b, i)
	b.ReportMetric(float64(hits)/float64(i), "matches/op")
}

func BenchmarkMatchDomain(b *testing.B) {
	d := benchSetup(b)
	buf := make([]Indicator, 0, 16)
	hits, i := 0, 0
	b.ReportAllocs()
	cpu := startCPU(b)
	for b.Loop() {
		buf = d.m.AppendDomain(buf[:0], d.domains[i%len(d.domains)])
		hits += len(buf)
		i++
	}
	cpu.report(b, i)
	b.ReportMetric(float64(hits)/float64(i), "matches/op")
}

func BenchmarkMatchHash(b *testing.B) {
	d := benchSetup(b)
	buf := make([]Indicator, 0, 16)
	hits, i := 0, 0
	b.ReportAllocs()
	cpu := startCPU(b)
	for b.Loop() {
		buf = d.m.AppendHash(buf[:0], d.hashes[i%len(d.hashes)])
		hits += len(buf)
		i++
	}
	cpu.report(b, i)
	b.ReportMetric(float64(hits)/float64(i), "matches/op")
}

// BenchmarkMatchIPAlloc measures the convenience form, which allocates a
// result slice on a hit.
func BenchmarkMatchIPAlloc(b *testing.B) {
	d := benchSetup(b)
	i := 0
	b.ReportAllocs()
	cpu := startCPU(b)
	for b.Loop() {
		_ = d.m.MatchIP(d.ips[i%len(d.ips)])
		i++
	}
	cpu.report(b, i)
}

// BenchmarkBaselineMap is a plain map[[32]byte]int32 of 50,000 random keys
// probed like BenchmarkMatchHash, to tell this machine's map cost apart.
func BenchmarkBaselineMap(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	m := map[[32]byte]int32{}
	keys := make([][32]byte, 0, 100_000)
	for i := 0; i < 100_000; i++ {
		var k [32]byte
		for j := range k {
			k[j] = byte(r.IntN(256))
		}
		if i%2 == 0 {
			m[k] = int32(i)
		}
		keys = append(keys, k)
	}
	i, n := 0, 0
	cpu := startCPU(b)
	for b.Loop() {
		if _, ok := m[keys[i%len(keys)]]; ok {
			n++
		}
		i++
	}
	cpu.report(b, i)
}

// BenchmarkBaselineRandomRead reads one uint64 at a random index of a
// 128 MiB array per op: the cost of one cache and TLB miss on this machine,
// which bounds what any lookup into 1M indicators can achieve.
func BenchmarkBaselineRandomRead(b *testing.B) {
	const n = 16 << 20
	a := make([]uint64, n)
	for i := range a {
		a[i] = uint64(i)
	}
	r := rand.New(rand.NewPCG(1, 2))
	idx := make([]uint32, 1<<16)
	for i := range idx {
		idx[i] = uint32(r.IntN(n))
	}
	var s uint64
	i := 0
	cpu := startCPU(b)
	for b.Loop() {
		s += a[idx[i&(1<<16-1)]]
		i++
	}
	cpu.report(b, i)
	_ = s
}

// BenchmarkBaselineDependentRead follows a random cycle through a 128 MiB
// array, each read depending on the last: the latency of one uncached
// memory access on this machine, the floor for a single lookup that must
// read one table slot.
func BenchmarkBaselineDependentRead(b *testing.B) {
	const n = 16 << 20
	a := make([]uint32, 2*n) // 128 MiB; only even slots are used
	perm := rand.New(rand.NewPCG(3, 4)).Perm(n)
	for i := 0; i < n; i++ {
		a[2*perm[i]] = uint32(perm[(i+1)%n])
	}
	p := uint32(perm[0])
	cpu := startCPU(b)
	i := 0
	for b.Loop() {
		p = a[2*p]
		i++
	}
	cpu.report(b, i)
	_ = p
}
