package dnsmon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent/dnsmon/dnstest"
	"golang.org/x/sys/unix"
)

func TestDNSFilterBounds(t *testing.T) {
	if _, err := dnsFilter(nil); err == nil {
		t.Error("no ports accepted")
	}
	if _, err := dnsFilter(make([]uint16, MaxPorts+1)); err == nil {
		t.Error("too many ports accepted")
	}
	ports := make([]uint16, MaxPorts)
	for i := range ports {
		ports[i] = uint16(5300 + i)
	}
	if _, err := dnsFilter(ports); err != nil {
		t.Fatal(err)
	}
}

// syncHandler is a Handler for a Monitor running in another goroutine.
type syncHandler struct {
	mu sync.Mutex
	r  recorder
}

func (h *syncHandler) Query(q *Query) { h.mu.Lock(); h.r.Query(q); h.mu.Unlock() }
func (h *syncHandler) Lost(reason string, n uint64) {
	h.mu.Lock()
	h.r.Lost(reason, n)
	h.mu.Unlock()
}

// find waits for a query of name and type.
func (h *syncHandler) find(t *testing.T, name string, typ uint16, timeout time.Duration) Query {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		h.mu.Lock()
		for _, q := range h.r.queries {
			if q.Name == name && q.Type == typ {
				h.mu.Unlock()
				return q
			}
		}
		h.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no %s query for %s seen", TypeName(typ), name)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startCapture runs a Monitor for the server's port and waits until it
// sees traffic.
func startCapture(t *testing.T, srv *dnstest.Server, timeout time.Duration) *syncHandler {
	t.Helper()
	h := &syncHandler{}
	m := New(Config{Ports: []uint16{srv.Addr.Port()}, Timeout: timeout})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(srv.Addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv.Answer("warmup.test", TypeA)
	deadline := time.Now().Add(10 * time.Second)
	for i := uint16(0); ; i++ {
		select {
		case err := <-done:
			t.Fatalf("Run returned at once: %v", err)
		default:
		}
		c.Write(dnstest.Query(i, "warmup.test", TypeA))
		time.Sleep(50 * time.Millisecond)
		h.mu.Lock()
		n := len(h.r.queries)
		h.mu.Unlock()
		if n > 0 {
			return h
		}
		if time.Now().After(deadline) {
			t.Fatal("the monitor saw no traffic")
		}
	}
}

// TestCaptureLoopback sends real DNS queries with Go's resolver over
// loopback to a test server on a port other than 53 and checks the
// monitor pairs them with their responses and finds the querying process.
func TestCaptureLoopback(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("capturing packets needs root (CAP_NET_RAW)")
	}
	srv, err := dnstest.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.Delay = 100 * time.Millisecond // the client socket stays open meanwhile
	srv.Answer("app.test.example", TypeA,
		dnstest.RR{Type: TypeCNAME, TTL: 300, RData: dnstest.Name("edge.cdn.test.example")},
		dnstest.RR{Name: dnstest.Name("edge.cdn.test.example"), Type: TypeA, TTL: 60, RData: dnstest.A("192.0.2.55")})
	srv.Silent("silent.test.example")
	h := startCapture(t, srv, 500*time.Millisecond)

	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", srv.Addr.String())
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addrs, err := r.LookupNetIP(ctx, "ip4", "app.test.example")
	if err != nil || len(addrs) != 1 || addrs[0] != netip.MustParseAddr("192.0.2.55") {
		t.Fatalf("lookup: %v %v", addrs, err)
	}
	q := h.find(t, "app.test.example", TypeA, 5*time.Second)
	exe, _ := os.Executable()
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if !q.QuerySeen || !q.Answered || q.RCode != 0 || q.AnswerCount != 2 || len(q.Answers) != 2 ||
		q.Answers[0].Target != "edge.cdn.test.example" || q.Answers[1].Addr != netip.MustParseAddr("192.0.2.55") ||
		q.Server != srv.Addr || q.Client.Addr() != netip.MustParseAddr("127.0.0.1") || q.CommunityID == "" {
		t.Fatalf("%+v", q)
	}
	if q.Process.PID != os.Getpid() || q.Process.Exe != exe || q.Process.ExeSHA256 != hex.EncodeToString(sum[:]) || q.Process.User != "root" {
		t.Errorf("process %+v, want pid %d %s", q.Process, os.Getpid(), exe)
	}

	// A query that gets no answer is reported after the timeout.
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(srv.Addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(dnstest.Query(77, "silent.test.example", TypeAAAA))
	q = h.find(t, "silent.test.example", TypeAAAA, 5*time.Second)
	if q.Answered || q.ID != 77 || q.Process.PID != os.Getpid() {
		t.Fatalf("%+v", q)
	}
	// NXDOMAIN.
	c.Write(dnstest.Query(78, "nx.test.example", TypeA))
	q = h.find(t, "nx.test.example", TypeA, 5*time.Second)
	if !q.Answered || RCodeName(q.RCode) != "NXDomain" {
		t.Fatalf("%+v", q)
	}
	// Each loopback packet is seen once: one query of each.
	h.mu.Lock()
	n := 0
	for _, q := range h.r.queries {
		if q.Name == "app.test.example" {
			n++
		}
	}
	lost := len(h.r.lost)
	h.mu.Unlock()
	if n != 1 || lost != 0 {
		t.Fatalf("%d app.test.example queries, lost %v", n, h.r.lost)
	}

	// The filter keeps other ports out; what reaches the DNS port and is
	// not DNS is counted, once.
	other, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	o, err := net.DialUDP("udp", nil, other.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	o.Write([]byte("not dns, another port"))
	c.Write([]byte("not dns"))
	deadline := time.Now().Add(5 * time.Second)
	for {
		h.mu.Lock()
		lost := h.r.lost[LostMalformed]
		h.mu.Unlock()
		if lost == 1 {
			break
		}
		if lost > 1 || time.Now().After(deadline) {
			t.Fatalf("%d malformed packets counted, want 1", lost)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.r.lost[LostMalformed] != 1 || len(h.r.lost) != 1 {
		t.Fatalf("lost %v", h.r.lost)
	}
}

// TestCaptureUnsupported checks the error without privilege.
func TestCaptureUnsupported(t *testing.T) {
	if os.Geteuid() == 0 {
		// As root, the error is checked on a bad configuration instead.
		err := New(Config{Ports: make([]uint16, MaxPorts+1)}).Run(context.Background(), nopHandler{})
		if err == nil || errors.Is(err, ErrUnsupported) {
			t.Fatalf("bad ports: %v", err)
		}
		return
	}
	err := New(Config{}).Run(context.Background(), nopHandler{})
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("got %v, want ErrUnsupported", err)
	}
}

// BenchmarkOwnerLookup measures the best-effort process lookup of one
// query on this machine: reading the UDP socket tables and, for a socket
// not seen before, scanning /proc/<pid>/fd (within its rate bound).
func BenchmarkOwnerLookup(b *testing.B) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	o := newOwners("/proc", time.Now)
	defer o.close()
	ap := c.LocalAddr().(*net.UDPAddr).AddrPort()
	server := netip.MustParseAddrPort("127.0.0.1:53")
	if p := o.lookup(ap, server); os.Geteuid() == 0 && p.PID != os.Getpid() {
		b.Fatalf("lookup: %+v", p)
	}
	for b.Loop() {
		o.lookup(ap, server)
	}
}

// TestUDPDiagLookup checks the exact sock_diag lookup against the inode
// of real sockets: a connected one (as resolvers use) and a bound,
// unconnected one.
func TestUDPDiagLookup(t *testing.T) {
	server, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	sa := server.LocalAddr().(*net.UDPAddr).AddrPort()
	connected, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(sa))
	if err != nil {
		t.Fatal(err)
	}
	defer connected.Close()
	inode := func(c *net.UDPConn) uint64 {
		rc, _ := c.SyscallConn()
		var st unix.Stat_t
		rc.Control(func(fd uintptr) { unix.Fstat(int(fd), &st) })
		return st.Ino
	}
	d := newUDPDiag()
	defer d.close()
	for name, c := range map[string]struct {
		conn          *net.UDPConn
		local, remote netip.AddrPort
	}{
		"connected":   {connected, connected.LocalAddr().(*net.UDPAddr).AddrPort(), sa},
		"unconnected": {server, sa, netip.MustParseAddrPort("192.0.2.1:53")},
	} {
		uid, ino, err := d.lookup(c.local, c.remote)
		if err != nil || ino != inode(c.conn) || uid != uint32(os.Geteuid()) {
			t.Errorf("%s: uid %d inode %d (%v), want %d %d", name, uid, ino, err, os.Geteuid(), inode(c.conn))
		}
	}
	if _, _, err := d.lookup(netip.MustParseAddrPort("127.0.0.1:1"), sa); err == nil {
		t.Error("a socket that does not exist was found")
	}
}

// TestOwnersBothSources finds this process as the owner of a connected
// UDP socket over sock_diag and, as on kernels without udp_diag, from
// /proc/net/udp.
func TestOwnersBothSources(t *testing.T) {
	server, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	sa := server.LocalAddr().(*net.UDPAddr).AddrPort()
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(sa))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	la := c.LocalAddr().(*net.UDPAddr).AddrPort()
	exe, _ := os.Executable()
	for _, diag := range []bool{true, false} {
		o := newOwners("/proc", time.Now)
		if !diag {
			o.diag.close()
			o.diag = nil
		}
		p := o.lookup(la, sa)
		if p.PID != os.Getpid() || p.Exe != exe || len(p.ExeSHA256) != 64 || p.User == "" {
			t.Errorf("sock_diag %v: %+v, want pid %d %s", diag, p, os.Getpid(), exe)
		}
		if q := o.lookup(netip.MustParseAddrPort("127.0.0.1:1"), sa); q.PID != 0 {
			t.Errorf("sock_diag %v: an owner for a socket that does not exist: %+v", diag, q)
		}
		o.close()
	}
}
