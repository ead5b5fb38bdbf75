// Package iocblock drops a device's traffic to and from addresses named
// by indicators of compromise, with nftables: one table, inet
// bulwark_ioc, holding interval sets of IPv4 and IPv6 prefixes and two
// base chains (output: destination in a set; input: source in a set) that
// drop matching packets, with counters. The whole table is replaced in one
// nft transaction (nft -f -), so traffic is never unfiltered between two
// versions, and removed the same way. Exempt addresses (the Bulwark
// server) are accepted before the drop rules so that blocking can never
// cut a device off from the server that would lift it.
//
// Only addresses can be blocked this way: domain, URL and hash indicators
// are matched (flagged) by the agent but not blocked.
//
// A Blocker is safe for concurrent use; calls are serialized.
package iocblock

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"
)

// Table is the nftables table the Blocker owns (family inet).
const Table = "bulwark_ioc"

// DefaultMaxPrefixes bounds the prefixes one Apply installs when
// Blocker.MaxPrefixes is zero.
const DefaultMaxPrefixes = 200_000

// ErrNoNFT is returned (wrapped) when the nft command cannot be run.
var ErrNoNFT = errors.New("nft is not available")

// Blocker installs and removes the table.
type Blocker struct {
	// Command is the nft command and its leading arguments, e.g.
	// {"ip", "netns", "exec", "test", "nft"}; "-f -" is appended. Empty
	// means {"nft"}.
	Command []string
	// MaxPrefixes bounds the prefixes installed (after merging); the
	// rest are left out and reported by Apply. Zero means
	// DefaultMaxPrefixes.
	MaxPrefixes int
	// Timeout bounds one nft run; zero means 2 minutes.
	Timeout time.Duration

	mu sync.Mutex
}

// Result describes what Apply installed.
type Result struct {
	// Prefixes is the number of prefixes in the sets after merging
	// (addresses inside a blocked prefix, and duplicates, are dropped).
	Prefixes int
	// Omitted counts prefixes left out over MaxPrefixes.
	Omitted int
}

// Apply replaces the table with one that drops traffic to and from
// prefixes (single addresses are full-length prefixes), except traffic
// with the exempt addresses.
func (b *Blocker) Apply(ctx context.Context, prefixes []netip.Prefix, exempt []netip.Addr) (Result, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	v4, v6 := merge(prefixes)
	limit := b.MaxPrefixes
	if limit <= 0 {
		limit = DefaultMaxPrefixes
	}
	var res Result
	if n := len(v4) + len(v6); n > limit {
		res.Omitted = n - limit
		// Keep IPv4 first: most indicators are IPv4, and the lists are
		// sorted, so what is kept does not depend on map order.
		if len(v4) > limit {
			v4 = v4[:limit]
		}
		v6 = v6[:limit-len(v4)]
	}
	res.Prefixes = len(v4) + len(v6)
	var ex4, ex6 []netip.Prefix
	for _, a := range exempt {
		if !a.IsValid() {
			continue
		}
		a = a.Unmap()
		p := netip.PrefixFrom(a, a.BitLen())
		if a.Is4() {
			ex4 = append(ex4, p)
		} else {
			ex6 = append(ex6, p)
		}
	}
	ex4, _ = merge(ex4)
	_, ex6 = merge(ex6)
	var s bytes.Buffer
	fmt.Fprintf(&s, "table inet %s {}\ndelete table inet %s\ntable inet %s {\n", Table, Table, Table)
	writeSet(&s, "block4", "ipv4_addr", v4)
	writeSet(&s, "block6", "ipv6_addr", v6)
	writeSet(&s, "exempt4", "ipv4_addr", ex4)
	writeSet(&s, "exempt6", "ipv6_addr", ex6)
	s.WriteString("\tchain output {\n\t\ttype filter hook output priority filter - 10; policy accept;\n" +
		"\t\tip daddr @exempt4 accept\n\t\tip6 daddr @exempt6 accept\n" +
		"\t\tip daddr @block4 counter drop\n\t\tip6 daddr @block6 counter drop\n\t}\n")
	s.WriteString("\tchain input {\n\t\ttype filter hook input priority filter - 10; policy accept;\n" +
		"\t\tip saddr @exempt4 accept\n\t\tip6 saddr @exempt6 accept\n" +
		"\t\tip saddr @block4 counter drop\n\t\tip6 saddr @block6 counter drop\n\t}\n}\n")
	if err := b.run(ctx, s.Bytes()); err != nil {
		return Result{}, fmt.Errorf("iocblock: installing table inet %s: %w", Table, err)
	}
	return res, nil
}

// Remove deletes the table; removing a table that does not exist is not
// an error.
func (b *Blocker) Remove(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	script := fmt.Sprintf("table inet %s {}\ndelete table inet %s\n", Table, Table)
	if err := b.run(ctx, []byte(script)); err != nil {
		return fmt.Errorf("iocblock: removing table inet %s: %w", Table, err)
	}
	return nil
}

// Installed reports whether the table exists.
func (b *Blocker) Installed(ctx context.Context) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out, err := b.exec(ctx, nil, "list", "tables", "inet")
	if err != nil {
		return false, fmt.Errorf("iocblock: listing tables: %w", err)
	}
	for line := range strings.Lines(string(out)) {
		if strings.TrimSpace(line) == "table inet "+Table {
			return true, nil
		}
	}
	return false, nil
}

func (b *Blocker) run(ctx context.Context, script []byte) error {
	_, err := b.exec(ctx, script, "-f", "-")
	return err
}

func (b *Blocker) exec(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	argv := slices.Clone(b.Command)
	if len(argv) == 0 {
		argv = []string{"nft"}
	}
	argv = append(argv, args...)
	timeout := b.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) && ctx.Err() == nil {
			// It did not start: missing, not executable, not found in $PATH.
			return nil, fmt.Errorf("%w: %v", ErrNoNFT, err)
		}
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 512 {
			msg = msg[:512] + "..."
		}
		if msg == "" {
			return nil, fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
		}
		return nil, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, msg)
	}
	return stdout.Bytes(), nil
}

func writeSet(s *bytes.Buffer, name, typ string, ps []netip.Prefix) {
	fmt.Fprintf(s, "\tset %s {\n\t\ttype %s\n\t\tflags interval\n", name, typ)
	if len(ps) > 0 {
		s.WriteString("\t\telements = {")
		for i, p := range ps {
			if i > 0 {
				s.WriteString(",")
			}
			if i%8 == 0 {
				s.WriteString("\n\t\t\t")
			} else {
				s.WriteString(" ")
			}
			if p.IsSingleIP() {
				s.WriteString(p.Addr().String())
			} else {
				s.WriteString(p.String())
			}
		}
		s.WriteString("\n\t\t}\n")
	}
	s.WriteString("\t}\n")
}

// merge splits prefixes by family, masks and sorts them and drops those
// inside another (an nftables interval set refuses overlapping elements).
// Invalid prefixes are ignored.
func merge(in []netip.Prefix) (v4, v6 []netip.Prefix) {
	for _, p := range in {
		if !p.IsValid() {
			continue
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		p = p.Masked()
		if p.Addr().Is4() {
			v4 = append(v4, p)
		} else {
			v6 = append(v6, p)
		}
	}
	return dedup(v4), dedup(v6)
}

// dedup sorts ps by address then by length (shorter first) and keeps each
// prefix not contained in an earlier one. Sorted so, a prefix that contains
// a later one is the last kept one, if any.
func dedup(ps []netip.Prefix) []netip.Prefix {
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	out := ps[:0]
	for _, p := range ps {
		if n := len(out); n > 0 && out[n-1].Contains(p.Addr()) && out[n-1].Bits() <= p.Bits() {
			continue
		}
		out = append(out, p)
	}
	return out
}
