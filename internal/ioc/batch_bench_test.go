package ioc

import (
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
)

// Query mixes over the 1M-indicator matcher of benchSetup: the existing
// lists (half hits) and lists where 99.9 % miss, as most real traffic does.
type benchMixes struct {
	ipsMiss, domainsMiss, hashesMiss []string // 1 in 1,000 listed
	ipsMissAddr                      []netip.Addr
}

var (
	mixOnce sync.Once
	mixes   benchMixes
)

func benchMix(b *testing.B) (*benchData, *benchMixes) {
	d := benchSetup(b)
	mixOnce.Do(func() {
		r := rand.New(rand.NewPCG(9, 9))
		const n = 200_000
		for len(mixes.ipsMissAddr) < n {
			if len(mixes.ipsMissAddr)%1000 == 999 {
				for {
					a := d.ips[r.IntN(len(d.ips))]
					if len(d.m.MatchIP(a)) > 0 {
						mixes.ipsMissAddr = append(mixes.ipsMissAddr, a)
						break
					}
				}
				continue
			}
			a := netip.AddrFrom4([4]byte{byte(r.IntN(224)), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))})
			if len(d.m.MatchIP(a)) == 0 {
				mixes.ipsMissAddr = append(mixes.ipsMissAddr, a)
			}
		}
		pick := func(from []string) []string {
			var hits, misses []string
			for _, s := range from {
				if len(d.m.MatchDomain(s))+len(d.m.MatchHash(s)) > 0 {
					hits = append(hits, s)
				} else {
					misses = append(misses, s)
				}
			}
			out := make([]string, 0, n)
			for i := range n {
				if i%1000 == 999 {
					out = append(out, hits[r.IntN(len(hits))])
				} else {
					out = append(out, misses[r.IntN(len(misses))])
				}
			}
			return pack(out)
		}
		mixes.domainsMiss = pick(d.domains)
		mixes.hashesMiss = pick(d.hashes)
	})
	return d, &mixes
}

func benchSingle[Q any](b *testing.B, qs []Q, f func(dst []Indicator, q Q) []Indicator) {
	buf := make([]Indicator, 0, 16)
	hits, i := 0, 0
	b.ReportAllocs()
	cpu := startCPU(b)
	for b.Loop() {
		buf = f(buf[:0], qs[i%len(qs)])
		hits += len(buf)
		i++
	}
	cpu.report(b, i)
	b.ReportMetric(float64(hits)/float64(i), "matches/op")
}

func BenchmarkMatchIPMiss(b *testing.B) {
	d, x := benchMix(b)
	benchSingle(b, x.ipsMissAddr, d.m.AppendIP)
}

func BenchmarkMatchDomainMiss(b *testing.B) {
	d, x := benchMix(b)
	benchSingle(b, x.domainsMiss, d.m.AppendDomain)
}

func BenchmarkMatchHashMiss(b *testing.B) {
	d, x := benchMix(b)
	benchSingle(b, x.hashesMiss, d.m.AppendHash)
}

// benchBatch adds batchSize queries to a Batch, matches it and reads every
// result, per b.Loop iteration; one op is one lookup.
func benchBatch[Q any](b *testing.B, m *Matcher, qs []Q, add func(*Batch, Q) int) {
	const batchSize = 256
	var batch Batch
	hits, i := 0, 0
	b.ReportAllocs()
	cpu := startCPU(b)
	for b.Loop() {
		batch.Reset()
		for range batchSize {
			add(&batch, qs[i%len(qs)])
			i++
		}
		m.MatchBatch(&batch)
		for q := range batch.Len() {
			hits += len(batch.Result(q))
		}
	}
	cpu.report(b, i)
	b.ReportMetric(float64(hits)/float64(i), "matches/op")
}

func BenchmarkBatchIP(b *testing.B) {
	d := benchSetup(b)
	benchBatch(b, d.m, d.ips, (*Batch).AddIP)
}

func BenchmarkBatchDomain(b *testing.B) {
	d := benchSetup(b)
	benchBatch(b, d.m, d.domains, (*Batch).AddDomain)
}

func BenchmarkBatchHash(b *testing.B) {
	d := benchSetup(b)
	benchBatch(b, d.m, d.hashes, (*Batch).AddHash)
}

func BenchmarkBatchIPMiss(b *testing.B) {
	d, x := benchMix(b)
	benchBatch(b, d.m, x.ipsMissAddr, (*Batch).AddIP)
}

func BenchmarkBatchDomainMiss(b *testing.B) {
	d, x := benchMix(b)
	benchBatch(b, d.m, x.domainsMiss, (*Batch).AddDomain)
}

func BenchmarkBatchHashMiss(b *testing.B) {
	d, x := benchMix(b)
	benchBatch(b, d.m, x.hashesMiss, (*Batch).AddHash)
}
