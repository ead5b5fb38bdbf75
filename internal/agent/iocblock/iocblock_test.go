package iocblock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestMerge(t *testing.T) {
	pfx := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	for _, tc := range []struct {
		in     []netip.Prefix
		v4, v6 []netip.Prefix
	}{
		{nil, nil, nil},
		{pfx("10.0.0.1/32", "10.0.0.0/8", "10.1.0.0/16", "11.0.0.0/8", "10.0.0.1/32"), pfx("10.0.0.0/8", "11.0.0.0/8"), nil},
		{pfx("192.0.2.7/24", "192.0.2.0/25", "198.51.100.1/32"), pfx("192.0.2.0/24", "198.51.100.1/32"), nil},
		{pfx("::ffff:203.0.113.9/128", "2001:db8::/32", "2001:db8:1::1/128", "2001:db9::1/128"), pfx("203.0.113.9/32"), pfx("2001:db8::/32", "2001:db9::1/128")},
		{pfx("10.0.0.2/32", "10.0.0.3/32", "10.0.0.2/31"), pfx("10.0.0.2/31"), nil},
	} {
		v4, v6 := merge(slices.Clone(tc.in))
		if !slices.Equal(v4, tc.v4) || !slices.Equal(v6, tc.v6) {
			t.Errorf("merge(%v) = %v %v, want %v %v", tc.in, v4, v6, tc.v4, tc.v6)
		}
	}
}

func TestNoNFT(t *testing.T) {
	b := &Blocker{Command: []string{"/nonexistent/bulwark-test/nft"}}
	_, err := b.Apply(context.Background(), []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")}, nil)
	if !errors.Is(err, ErrNoNFT) {
		t.Fatalf("Apply with a missing nft: %v, want ErrNoNFT", err)
	}
	if err := b.Remove(context.Background()); !errors.Is(err, ErrNoNFT) {
		t.Fatalf("Remove with a missing nft: %v, want ErrNoNFT", err)
	}
	// nft that fails: its message is in the error.
	b = &Blocker{Command: []string{"sh", "-c", "echo 'Error: no such table' >&2; exit 1", "nft"}}
	if err := b.Remove(context.Background()); err == nil || !strings.Contains(err.Error(), "no such table") {
		t.Fatalf("Remove with a failing nft: %v", err)
	}
}

// netns is a network namespace for the test, with addresses on its
// loopback interface.
type netns struct {
	name string
	path string
}

func newNetns(t *testing.T, addrs ...string) *netns {
	t.Helper()
	var rb [4]byte
	rand.Read(rb[:])
	ns := &netns{name: "bwioc-" + hex.EncodeToString(rb[:]), path: ""}
	ns.path = "/run/netns/" + ns.name
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("ip", "netns", "add", ns.name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns.name).Run() })
	run("ip", "-n", ns.name, "link", "set", "lo", "up")
	for _, a := range addrs {
		if strings.Contains(a, ":") {
			run("ip", "-n", ns.name, "addr", "add", a+"/128", "dev", "lo", "nodad")
		} else {
			run("ip", "-n", ns.name, "addr", "add", a+"/32", "dev", "lo")
		}
	}
	return ns
}

// in runs f on a thread inside the namespace: sockets f creates belong to
// it.
func (ns *netns) in(t *testing.T, f func()) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open(ns.path)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns: %w", err)
			return
		}
		f()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: it dies with the goroutine.
			errc <- fmt.Errorf("setns back: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// TestBlockInNetns installs the table in a fresh network namespace and
// checks, with real TCP connections inside it, that blocked addresses and
// prefixes cannot be reached (in either family) while others, and exempt
// ones, can; that a new set replaces the old one whole; and that Remove
// deletes the table.
func TestBlockInNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace")
	}
	ctx := context.Background()
	ns := newNetns(t, "10.99.0.1", "10.99.0.2", "10.99.0.5", "10.99.0.6", "fd00:99::1", "fd00:99::2")
	b := &Blocker{Command: []string{"ip", "netns", "exec", ns.name, "nft"}}

	var ln net.Listener
	ns.in(t, func() {
		var err error
		if ln, err = net.Listen("tcp", ":0"); err != nil {
			t.Error(err)
		}
	})
	if ln == nil {
		t.FailNow()
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	reachable := func() map[string]bool {
		got := map[string]bool{}
		ns.in(t, func() {
			for _, a := range []string{"10.99.0.1", "10.99.0.2", "10.99.0.5", "10.99.0.6", "fd00:99::1", "fd00:99::2"} {
				c, err := net.DialTimeout("tcp", net.JoinHostPort(a, fmt.Sprint(port)), time.Second)
				if err == nil {
					c.Close()
				}
				got[a] = err == nil
			}
		})
		return got
	}
	check := func(what string, want map[string]bool) {
		t.Helper()
		if got := reachable(); !maps.Equal(got, want) {
			t.Fatalf("%s: reachable %v, want %v", what, got, want)
		}
	}
	all := map[string]bool{"10.99.0.1": true, "10.99.0.2": true, "10.99.0.5": true, "10.99.0.6": true, "fd00:99::1": true, "fd00:99::2": true}
	check("before blocking", all)

	// 10.99.0.1 twice (alone and in 10.99.0.0/31): overlapping elements
	// must be merged for nft to accept the set. 10.99.0.4/30 holds .5 and
	// .6, and .5 is exempt.
	res, err := b.Apply(ctx, []netip.Prefix{
		netip.MustParsePrefix("10.99.0.1/32"), netip.MustParsePrefix("10.99.0.0/31"),
		netip.MustParsePrefix("10.99.0.4/30"), netip.MustParsePrefix("fd00:99::1/128"),
		netip.MustParsePrefix("198.51.100.0/24"),
	}, []netip.Addr{netip.MustParseAddr("10.99.0.5")})
	if err != nil {
		t.Fatal(err)
	}
	if res.Prefixes != 4 || res.Omitted != 0 {
		t.Errorf("Apply result %+v, want 4 prefixes", res)
	}
	if ok, err := b.Installed(ctx); err != nil || !ok {
		t.Fatalf("Installed after Apply: %v %v", ok, err)
	}
	check("blocking", map[string]bool{"10.99.0.1": false, "10.99.0.2": true, "10.99.0.5": true, "10.99.0.6": false, "fd00:99::1": false, "fd00:99::2": true})

	// A new set replaces the old one whole; MaxPrefixes leaves the rest out.
	b.MaxPrefixes = 2
	res, err = b.Apply(ctx, []netip.Prefix{netip.MustParsePrefix("10.99.0.2/32"), netip.MustParsePrefix("fd00:99::2/128"), netip.MustParsePrefix("fd00:99::1/128")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Prefixes != 2 || res.Omitted != 1 {
		t.Errorf("Apply over the limit: %+v, want 2 prefixes and 1 omitted", res)
	}
	check("after replacing", map[string]bool{"10.99.0.1": true, "10.99.0.2": false, "10.99.0.5": true, "10.99.0.6": true, "fd00:99::1": false, "fd00:99::2": true})

	if err := b.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.Installed(ctx); err != nil || ok {
		t.Fatalf("Installed after Remove: %v %v", ok, err)
	}
	check("after removing", all)
	if err := b.Remove(ctx); err != nil {
		t.Fatalf("removing an absent table: %v", err)
	}
}
