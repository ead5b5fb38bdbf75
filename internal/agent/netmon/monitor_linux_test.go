package netmon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/user"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/communityid"
	"golang.org/x/sys/unix"
)

// backends runs f once per socket table source.
func backends(t *testing.T, f func(t *testing.T, b Backend)) {
	for _, b := range []Backend{BackendNetlink, BackendProc} {
		t.Run(string(b), func(t *testing.T) { f(t, b) })
	}
}

type self struct {
	pid       int
	exe, hash string
	user      string
}

func testSelf(t *testing.T) self {
	t.Helper()
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	name := strconv.Itoa(os.Getuid())
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	return self{os.Getpid(), exe, hex.EncodeToString(sum[:]), name}
}

// findFlow returns the flow with the given protocol and local/remote ports.
func findFlow(flows []Flow, proto string, local, remote netip.AddrPort) (Flow, bool) {
	for _, f := range flows {
		if f.Protocol == proto && f.LocalIP == local.Addr().Unmap() && f.LocalPort == local.Port() &&
			f.RemoteIP == remote.Addr().Unmap() && f.RemotePort == remote.Port() {
			return f, true
		}
	}
	return Flow{}, false
}

func addrPort(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort()
	case *net.UDPAddr:
		return a.AddrPort()
	}
	panic("unexpected address type")
}

func checkFlow(t *testing.T, flows []Flow, proto string, local, remote net.Addr, dir string, me self) {
	t.Helper()
	l, r := addrPort(local), addrPort(remote)
	f, ok := findFlow(flows, proto, l, r)
	if !ok {
		t.Errorf("%s flow %s -> %s not reported; got %+v", proto, l, r, flows)
		return
	}
	pnum := uint8(ProtoTCP)
	if proto == "udp" {
		pnum = ProtoUDP
	}
	cid, _ := communityid.ID(0, communityid.Tuple{Proto: pnum, SrcIP: l.Addr(), DstIP: r.Addr(), SrcPort: l.Port(), DstPort: r.Port()})
	if f.Direction != dir || f.CommunityID != cid || f.PID != me.pid || f.Exe != me.exe || f.ExeSHA256 != me.hash ||
		f.UID != uint32(os.Getuid()) || f.User != me.user || f.Inode == 0 || f.FirstSeen.IsZero() {
		t.Errorf("%s flow %s -> %s = %+v\nwant direction %s, community id %s, pid %d, exe %s, sha256 %s, user %s",
			proto, l, r, f, dir, cid, me.pid, me.exe, me.hash, me.user)
	}
	if proto == "tcp" && f.State != "ESTABLISHED" {
		t.Errorf("state = %s", f.State)
	}
}

func TestMonitorTCP(t *testing.T) {
	me := testSelf(t)
	backends(t, func(t *testing.T, b Backend) {
		for _, network := range []string{"tcp4", "tcp6"} {
			host := "127.0.0.1"
			if network == "tcp6" {
				host = "[::1]"
			}
			ln, err := net.Listen(network, host+":0")
			if err != nil {
				t.Logf("skipping %s: %v", network, err)
				continue
			}
			defer ln.Close()
			m := New(Config{Backend: b, SkipExisting: true})
			if flows, err := m.Poll(); err != nil || len(flows) != 0 {
				t.Fatalf("first poll with SkipExisting: %v, %v", flows, err)
			}
			if m.Backend() != b {
				t.Errorf("Backend() = %q", m.Backend())
			}
			c, err := net.Dial(network, ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			s, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			flows, err := m.Poll()
			if err != nil {
				t.Fatal(err)
			}
			checkFlow(t, flows, "tcp", c.LocalAddr(), c.RemoteAddr(), Outbound, me)
			checkFlow(t, flows, "tcp", s.LocalAddr(), s.RemoteAddr(), Inbound, me)
			if f, ok := findFlow(flows, "tcp", addrPort(c.LocalAddr()), addrPort(c.RemoteAddr())); ok {
				if f.Src() != addrPort(c.LocalAddr()) || f.Dst() != addrPort(ln.Addr()) {
					t.Errorf("outbound Src/Dst = %s/%s", f.Src(), f.Dst())
				}
			}
			if f, ok := findFlow(flows, "tcp", addrPort(s.LocalAddr()), addrPort(s.RemoteAddr())); ok {
				if f.Src() != addrPort(c.LocalAddr()) || f.Dst() != addrPort(ln.Addr()) {
					t.Errorf("inbound Src/Dst = %s/%s", f.Src(), f.Dst())
				}
			}

			// Reported once: the next poll has nothing new, even after the
			// client closes and its socket enters TIME_WAIT.
			if flows, _ := m.Poll(); mine(flows, c, s) {
				t.Errorf("flow reported twice: %+v", flows)
			}
			c.Close()
			s.Close()
			time.Sleep(50 * time.Millisecond)
			if flows, _ := m.Poll(); mine(flows, c, s) {
				t.Errorf("closed flow reported again: %+v", flows)
			}
		}
	})
}

// mine reports whether flows include either end of the connection c/s.
// (Other tests on the machine make connections too, and may even reuse a
// closed connection's ports, so the check is on the exact tuple.)
func mine(flows []Flow, conns ...net.Conn) bool {
	for _, c := range conns {
		if _, ok := findFlow(flows, c.LocalAddr().Network(), addrPort(c.LocalAddr()), addrPort(c.RemoteAddr())); ok {
			return true
		}
	}
	return false
}

func reusePort(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

func TestMonitorUDP(t *testing.T) {
	me := testSelf(t)
	backends(t, func(t *testing.T, b Backend) {
		for _, network := range []string{"udp4", "udp6"} {
			host := "127.0.0.1"
			if network == "udp6" {
				host = "[::1]"
			}
			lc := net.ListenConfig{Control: reusePort}
			srv, err := lc.ListenPacket(context.Background(), network, host+":0")
			if err != nil {
				t.Logf("skipping %s: %v", network, err)
				continue
			}
			defer srv.Close()
			m := New(Config{Backend: b, SkipExisting: true})
			if _, err := m.Poll(); err != nil {
				t.Fatal(err)
			}
			// Outbound: a connected client socket.
			c, err := net.Dial(network, srv.LocalAddr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// Inbound: the server answers from a socket connected to the
			// client and sharing the listening port (as QUIC servers do).
			d := net.Dialer{LocalAddr: srv.LocalAddr(), Control: reusePort}
			s, err := d.Dial(network, c.LocalAddr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			flows, err := m.Poll()
			if err != nil {
				t.Fatal(err)
			}
			checkFlow(t, flows, "udp", c.LocalAddr(), c.RemoteAddr(), Outbound, me)
			checkFlow(t, flows, "udp", s.LocalAddr(), s.RemoteAddr(), Inbound, me)
			if _, ok := findFlow(flows, "udp", addrPort(srv.LocalAddr()), netip.AddrPort{}); ok {
				t.Error("unconnected UDP socket reported as a flow")
			}
			if flows, _ := m.Poll(); mine(flows, c, s) {
				t.Errorf("UDP flow reported twice: %+v", flows)
			}
		}
	})
}

func TestMonitorRun(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// Without SkipExisting the connection is reported whether or not the
	// first poll (slow with a big socket table under -race) sees it.
	m := New(Config{Interval: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan Flow, 1000)
	done := make(chan error, 1)
	go func() {
		done <- m.Run(ctx, func(f Flow) {
			select {
			case got <- f:
			case <-ctx.Done():
			}
		})
	}()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := addrPort(c.LocalAddr()).Port()
	timeout := time.After(30 * time.Second)
wait:
	for {
		select {
		case f := <-got:
			if f.LocalPort == want && f.Direction == Outbound {
				break wait
			}
		case <-timeout:
			t.Fatal("Run did not emit the new connection")
		}
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("Run returned %v", err)
	}
	if m.Backend() != BackendNetlink {
		t.Logf("auto backend fell back to %q", m.Backend())
	}
}

// TestMonitorCPU drives about 1,000 new loopback connections per second
// for five seconds while a Monitor polls every second, and measures the CPU
// time of the monitor: the Monitor runs in a goroutine locked to its own OS
// thread, whose time on CPU (/proc/self/task/<tid>/schedstat, read at the
// start and end of the load) covers all of its work, user and kernel,
// except garbage collection done by background workers. It also reports
// process CPU with and without the monitor over the same load.
func TestMonitorCPU(t *testing.T) {
	if testing.Short() {
		t.Skip("slow measurement")
	}
	if raceEnabled {
		t.Skip("CPU measurement is meaningless under the race detector")
	}
	const (
		rate = 1000 // connections per second
		dur  = 5 * time.Second
	)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The server closes after the client, so the client keeps each
	// connection in TIME_WAIT and the outbound flows account for all of
	// them (a later connection may reuse a client port; the socket cookie
	// tells them apart).
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				io.Copy(io.Discard, c)
				c.Close()
			}()
		}
	}()
	// generate opens and closes rate connections a second for d, and
	// returns the client ports it used.
	generate := func(d time.Duration) map[uint16]int {
		ports := map[uint16]int{} // client port → connections from it
		start := time.Now()
		for n := 0; ; {
			el := time.Since(start)
			if el >= d {
				return ports
			}
			// Catch up to rate×elapsed, then sleep a millisecond.
			for target := int(el.Seconds() * rate); n < target; n++ {
				c, err := net.Dial("tcp4", ln.Addr().String())
				if err != nil {
					t.Errorf("dial: %v", err)
					return ports
				}
				ports[addrPort(c.LocalAddr()).Port()]++
				c.Close()
			}
			time.Sleep(time.Millisecond)
		}
	}
	processCPU := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}

	// Baseline: the load alone.
	c0 := processCPU()
	w0 := time.Now()
	generate(dur)
	baseCPU, baseWall := processCPU()-c0, time.Since(w0)

	// Wait for the baseline's TIME_WAIT sockets to matter less: they are
	// listed by every poll either way, which is the realistic case.
	m := New(Config{SkipExisting: true})
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	out, in := map[uint16]int{}, map[uint16]int{} // client port → flows seen
	tid := make(chan int, 1)
	res := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tid <- unix.Gettid()
		lport := addrPort(ln.Addr()).Port()
		err := m.Run(ctx, func(f Flow) {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case f.Direction == Outbound && f.RemotePort == lport:
				out[f.LocalPort]++
			case f.Direction == Inbound && f.LocalPort == lport:
				in[f.RemotePort]++
			}
		})
		res <- err
	}()
	// threadCPU reads the monitor thread's time on CPU (schedstat, ns).
	monTID := <-tid
	threadCPU := func() time.Duration {
		b, err := os.ReadFile("/proc/self/task/" + strconv.Itoa(monTID) + "/schedstat")
		if err != nil {
			t.Fatal(err)
		}
		var ns int64
		if _, err := fmt.Sscan(string(b), &ns); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ns)
	}
	time.Sleep(1100 * time.Millisecond) // first poll (SkipExisting) done
	t1, c1 := threadCPU(), processCPU()
	w1 := time.Now()
	ports := generate(dur)
	thCPU, monCPU, monWall := threadCPU()-t1, processCPU()-c1, time.Since(w1)
	time.Sleep(1500 * time.Millisecond) // let the last connections be polled
	cancel()
	if err := <-res; err != context.Canceled {
		t.Fatalf("Run: %v", err)
	}
	t.Logf("the last poll listed %d sockets", len(m.socks))
	mu.Lock()
	found, total := 0, 0
	for p, n := range ports {
		total += n
		found += min(n, out[p])
	}
	mu.Unlock()
	share := thCPU.Seconds() / monWall.Seconds()
	t.Logf("connections: %d in %v (%.0f/s); reported as outbound flows: %d (%.1f%%)",
		total, monWall.Round(time.Millisecond), float64(total)/monWall.Seconds(), found, 100*float64(found)/float64(total))
	t.Logf("monitor thread CPU: %v over %v = %.2f%% of one core", thCPU.Round(time.Millisecond), monWall.Round(time.Millisecond), 100*share)
	t.Logf("process CPU: %.2f%% of one core with the monitor, %.2f%% without (difference %.2f%%)",
		100*monCPU.Seconds()/monWall.Seconds(), 100*baseCPU.Seconds()/baseWall.Seconds(),
		100*(monCPU.Seconds()/monWall.Seconds()-baseCPU.Seconds()/baseWall.Seconds()))
	if found < total*95/100 {
		t.Errorf("only %d of %d connections reported", found, total)
	}
	// The target is < 5% of a core; the measurement varies with the load
	// of the machine and the size of the socket table (every TIME_WAIT
	// socket, including other processes' and earlier tests', is listed by
	// every poll), so only a clear regression fails the test.
	if share >= 0.10 {
		t.Errorf("monitor used %.2f%% of a core; the target is < 5%%", 100*share)
	}
}

// BenchmarkPoll measures one poll of the machine's socket tables as they
// are (run it after TestMonitorCPU to have tens of thousands of TIME_WAIT
// sockets); it reports the sockets listed and the cost per socket.
func BenchmarkPoll(b *testing.B) {
	for _, be := range []Backend{BackendNetlink, BackendProc} {
		b.Run(string(be), func(b *testing.B) {
			m := New(Config{Backend: be})
			if _, err := m.Poll(); err != nil {
				b.Fatal(err)
			}
			n := 0
			for b.Loop() {
				if _, err := m.Poll(); err != nil {
					b.Fatal(err)
				}
				n += len(m.socks)
			}
			b.ReportMetric(float64(n)/float64(b.N), "sockets/poll")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/socket")
		})
	}
}
