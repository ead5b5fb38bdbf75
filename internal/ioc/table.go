package ioc

import (
	"hash/maphash"
	"math/bits"
	"unsafe"
)

// table maps keys to indicator chains. It is a bucketised open-addressing
// hash table: each bucket is one 64-byte cache line holding eight 32-bit
// fingerprints and the eight values beside them, and a key whose home
// bucket is full goes to the next one (linear probing by bucket, at most
// 3/4 full). In front of the buckets, a summary holds one 8-byte word per
// bucket: an 8-bit tag for each used slot (0 for a free one). At one
// eighth of the buckets' size the summaries of a million keys take about
// a megabyte and stay in the CPU's caches, so a lookup that misses, the
// usual case for traffic, reads one cached word and, 2 % of the time, one
// bucket. The keys, needed only to confirm a fingerprint match, sit in a
// separate array at the same slot positions (tables whose fingerprint is
// the key itself, IPv4, keep none). Built once by put, then read-only.
type table[K comparable] struct {
	tags  []uint64 // tags[i] byte j: tag of b[i] slot j, 0 if free
	b     []bucket
	keys  []K  // keys[8*i+j] is the key of b[i] slot j; nil if exact
	exact bool // the fingerprint is the key: keys are not stored
	n     int
}

const (
	bucketSlots = 8
	// emptyVal is what touchSlot returns when it finds nothing.
	emptyVal = ^uint32(0)
	// groupBit set in a value means the rest indexes Matcher.groups;
	// clear, the value is the id of the key's only indicator, which
	// cannot expire.
	groupBit = uint32(1) << 31
)

// bucket is one cache line. Slots are used in order and never freed, so a
// bucket whose last slot is free ends a probe sequence.
type bucket struct {
	fp  [bucketSlots]uint32
	val [bucketSlots]uint32
}

// group is the chain of indicators of one key when it has more than one or
// when one can expire: head is the most recently added, Matcher.next links
// the rest.
type group struct {
	head    int32
	expires bool // some indicator in the chain can expire
}

// init sizes t for up to n keys; exact tables use the key as fingerprint.
func (t *table[K]) init(n int, exact bool) {
	nb := (n*4/3 + bucketSlots - 1) / bucketSlots
	if n > 0 && nb == 0 {
		nb = 1
	}
	t.tags = make([]uint64, nb)
	t.b = make([]bucket, nb)
	if hugePages {
		adviseHuge(t.tags, false)
		adviseHuge(t.b, false)
	}
	t.exact = exact
	if !exact {
		t.keys = make([]K, nb*bucketSlots)
		if hugePages {
			adviseHuge(t.keys, false)
		}
	}
}

// home returns the bucket a hash starts probing at: the hash's high 32
// bits scaled to the bucket count (the low 32 bits make the fingerprint).
func (t *table[K]) home(h uint64) int {
	return int(h >> 32 * uint64(len(t.b)) >> 32)
}

// tagOf returns the nonzero summary tag of a hash: bits 32-39, which
// barely affect the home bucket (set by the top bits).
func tagOf(h uint64) uint64 {
	tg := h >> 32 & 0xff
	if tg == 0 {
		tg = 1
	}
	return tg * ones
}

// fpOf returns the fingerprint of a non-exact key from its hash.
func fpOf(h uint64) uint32 { return uint32(h) }

// slot returns the position (8*bucket+slot) of the key with hash h and
// fingerprint fp, or -1.
func (t *table[K]) slot(h uint64, fp uint32, k K) int {
	if len(t.b) == 0 {
		return -1
	}
	i := t.home(h)
	tg := tagOf(h)
	for {
		w := t.tags[i]
		for m := zeroBytes(w ^ tg); m != 0; m &= m - 1 {
			s := i*bucketSlots + bits.TrailingZeros64(m)/8
			if t.b[i].fp[s%bucketSlots] == fp && (t.exact || t.keys[s] == k) {
				return s
			}
		}
		if w>>56 == 0 {
			return -1
		}
		if i++; i == len(t.b) {
			i = 0
		}
	}
}

// get returns the value of the key with hash h and fingerprint fp.
func (t *table[K]) get(h uint64, fp uint32, k K) (uint32, bool) {
	s := t.slot(h, fp, k)
	if s < 0 {
		return 0, false
	}
	return t.b[s/bucketSlots].val[s%bucketSlots], true
}

// touch reads the summary word of the home bucket of h, so that a later
// lookup finds it in cache; batch lookups touch many before looking any
// up, overlapping the misses.
func (t *table[K]) touch(h uint64) uint32 {
	if len(t.b) == 0 {
		return 0
	}
	return uint32(t.tags[t.home(h)])
}

// touchSlot looks in the home bucket of h for the tag and fingerprint of h
// and, if found, touches the key there; it returns the value beside the
// fingerprint and the slot (emptyVal and -1 if none), without confirming
// the key. The last result is a byte of the key, to keep the read.
func (t *table[K]) touchSlot(h uint64, fp uint32) (uint32, int, uint32) {
	if len(t.b) == 0 {
		return emptyVal, -1, 0
	}
	i := t.home(h)
	for m := zeroBytes(t.tags[i] ^ tagOf(h)); m != 0; m &= m - 1 {
		j := bits.TrailingZeros64(m) / 8
		if b := &t.b[i]; b.fp[j] == fp {
			s := i*bucketSlots + j
			if t.exact {
				return b.val[j], s, 0
			}
			return b.val[j], s, uint32(*(*uint8)(unsafe.Pointer(&t.keys[s])))
		}
	}
	return emptyVal, -1, 0
}

// put adds indicator id under k and returns the previous head of k's
// chain, or -1. groups receives the chains of keys holding more than one
// indicator or one that can expire. t must have room (see init).
func (t *table[K]) put(h uint64, fp uint32, k K, id int32, expires bool, groups *[]group) int32 {
	if s := t.slot(h, fp, k); s >= 0 {
		v := &t.b[s/bucketSlots].val[s%bucketSlots]
		if *v&groupBit == 0 { // a single indicator becomes a group
			*groups = append(*groups, group{head: int32(*v)})
			*v = groupBit | uint32(len(*groups)-1)
		}
		g := &(*groups)[*v&^groupBit]
		prev := g.head
		g.head, g.expires = id, g.expires || expires
		return prev
	}
	v := uint32(id)
	if expires {
		*groups = append(*groups, group{head: id, expires: true})
		v = groupBit | uint32(len(*groups)-1)
	}
	i := t.home(h)
	for {
		if w := t.tags[i]; w>>56 == 0 {
			j := (64 - bits.LeadingZeros64(w) + 7) / 8 // first free slot
			t.tags[i] = w | tagOf(h)&0xff<<(8*j)
			b := &t.b[i]
			b.fp[j], b.val[j] = fp, v
			if !t.exact {
				t.keys[i*bucketSlots+j] = k
			}
			t.n++
			return -1
		}
		if i++; i == len(t.b) {
			i = 0
		}
	}
}

// mix64 is the splitmix64 finalizer.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// hasher derives slot hashes, keyed by a per-matcher random seed so that a
// feed cannot pick values that collide.
type hasher struct {
	seed   maphash.Seed
	seed64 uint64
}

func newHasher() hasher {
	s := maphash.MakeSeed()
	return hasher{seed: s, seed64: maphash.Comparable(s, 0) | 1}
}

func (h hasher) u32(k uint32) uint64 { return mix64(uint64(k) ^ h.seed64) }
func (h hasher) u128(k u128) uint64  { return mix64(k.hi ^ mix64(k.lo^h.seed64)) }
func (h hasher) str(s string) uint64 { return maphash.String(h.seed, s) }

// digest hashes a file digest of 16, 20 or 32 bytes, all of them: a feed
// listing many digests that share a prefix must not make them collide.
func (h hasher) digest(b []byte) uint64 {
	x := mix64(be64(b) ^ h.seed64)
	for i := 8; i+8 <= len(b); i += 8 {
		x = mix64(x ^ be64(b[i:]))
	}
	if len(b)%8 != 0 {
		x = mix64(x ^ be64(b[len(b)-8:]))
	}
	return x
}
