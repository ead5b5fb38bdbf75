package ioc

import "hash/maphash"

// table is an open-addressing hash table (linear probing, load ≤ 1/2)
// mapping keys to indicator ids. A compact array of 16-bit tags, parallel to
// the slots, is probed first: at 2 bytes a slot it stays in cache far more
// than the slots do, so a lookup that misses (the usual case for traffic)
// rarely touches a slot. Each slot keeps the key's full 64-bit hash and the
// key itself next to the id; keys are compared only when the hashes are
// equal. Built once, then read-only.
type table[K comparable] struct {
	tags  []uint16 // tag of slots[i]; 0 = empty
	slots []slot[K]
	n     int
}

// tag derives a slot's nonzero 16-bit tag from its hash (from bits not used
// for the slot index).
func tag(fp uint64) uint16 { return uint16(fp>>48) | 1 }

type slot[K comparable] struct {
	fp      uint64 // key hash with the low bit set; 0 = empty
	id      int32
	expires bool // some indicator in the chain from id can expire
	key     K
}

// get returns the id for k and whether its chain has expiring indicators.
func (t *table[K]) get(fp uint64, k K) (id int32, expires, ok bool) {
	if len(t.slots) == 0 {
		return 0, false, false
	}
	fp |= 1
	tg := tag(fp)
	mask := uint64(len(t.slots) - 1)
	for i := fp >> 7 & mask; ; i = (i + 1) & mask {
		switch t.tags[i] {
		case 0:
			return 0, false, false
		case tg:
			if s := &t.slots[i]; s.fp == fp && s.key == k {
				return s.id, s.expires, true
			}
		}
	}
}

// put maps k to id and returns the id k had before, if any. expires marks
// the chain as holding an indicator that can expire.
func (t *table[K]) put(fp uint64, k K, id int32, expires bool) (int32, bool) {
	if 2*(t.n+1) > len(t.slots) {
		t.grow()
	}
	fp |= 1
	mask := uint64(len(t.slots) - 1)
	for i := fp >> 7 & mask; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.fp == fp && s.key == k {
			prev := s.id
			s.id = id
			s.expires = s.expires || expires
			return prev, true
		}
		if s.fp == 0 {
			s.fp, s.id, s.expires, s.key = fp, id, expires, k
			t.tags[i] = tag(fp)
			t.n++
			return 0, false
		}
	}
}

func (t *table[K]) grow() {
	size := 2 * len(t.slots)
	if size < 16 {
		size = 16
	}
	old := t.slots
	t.slots = make([]slot[K], size)
	t.tags = make([]uint16, size)
	mask := uint64(size - 1)
	for _, s := range old {
		if s.fp == 0 {
			continue
		}
		i := s.fp >> 7 & mask
		for t.slots[i].fp != 0 {
			i = (i + 1) & mask
		}
		t.slots[i] = s
		t.tags[i] = tag(s.fp)
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
func (h hasher) digest(b []byte) uint64 {
	_ = b[7]
	return mix64(be64(b) ^ h.seed64)
}
