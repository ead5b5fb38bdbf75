package iocblock

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"testing"
)

// BenchmarkApply100k installs 100,000 IPv4 addresses (nft -f - in a
// network namespace): what replacing a large block set costs.
func BenchmarkApply100k(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: creates a network namespace")
	}
	const ns = "bwioc-bench"
	exec.Command("ip", "netns", "del", ns).Run()
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		b.Fatalf("ip netns add: %v: %s", err, out)
	}
	defer exec.Command("ip", "netns", "del", ns).Run()
	ps := make([]netip.Prefix, 0, 100_000)
	for i := range 100_000 {
		ps = append(ps, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32))
	}
	bl := &Blocker{Command: []string{"ip", "netns", "exec", ns, "nft"}}
	for b.Loop() {
		if _, err := bl.Apply(context.Background(), ps, nil); err != nil {
			b.Fatal(err)
		}
	}
}
