package ioc

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// hugePage is the size of an x86-64 or arm64 transparent huge page.
const hugePage = 2 << 20

// adviseHuge asks the kernel to back the 2 MiB pages lying wholly inside
// s's backing array with transparent huge pages, and with collapse to do
// it now for pages already in memory rather than leave it to khugepaged.
//
// A lookup reads a few random cache lines of tables that are together far
// larger than the TLB covers in 4 KiB pages, so each read also walks the
// page tables; with huge pages those walks mostly hit. The Go runtime no
// longer asks for huge pages itself, and this host's kernel gives them
// only where asked (transparent_hugepage=madvise). The memory remains the
// Go heap's: this is only advice, failures (old kernels, THP disabled) are
// ignored and nothing changes but speed. Arrays under 4 MiB are left alone.
// The advice outlives the array: once the matcher is collected, the
// runtime may reuse those pages for other objects, still huge-page backed
// (as with transparent_hugepage=always), and each advised range is a
// separate kernel mapping (VMA) until neighbouring ones merge.
func adviseHuge[T any](s []T, collapse bool) {
	n := uintptr(cap(s)) * unsafe.Sizeof(*new(T))
	if n < 2*hugePage {
		return
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(s)))
	start := (p + hugePage - 1) &^ (hugePage - 1)
	end := (p + n) &^ (hugePage - 1)
	if end <= start {
		return
	}
	b := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(s)), start-p)), end-start)
	if unix.Madvise(b, unix.MADV_HUGEPAGE) != nil || !collapse {
		return
	}
	_ = unix.Madvise(b, unix.MADV_COLLAPSE)
}
