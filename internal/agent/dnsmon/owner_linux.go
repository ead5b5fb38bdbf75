package dnsmon

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent/netmon"
	"golang.org/x/sys/unix"
)

const (
	// scansPerSecond and scanBurst bound the scans of /proc/<pid>/fd for
	// sockets not yet known, which cost the most: a token bucket.
	scansPerSecond = 10
	scanBurst      = 10
)

// owners finds the process owning a UDP socket by its local address:
// the socket's inode from /proc/net/udp[6] (the table netmon reads), then
// the process holding that inode among /proc/<pid>/fd.
type owners struct {
	root     string
	now      func() time.Time
	socks    []netmon.Socket
	proc     *netmon.ProcIndex // socket inode -> process, executables, users
	lastScan time.Time
	tokens   float64
	diag     *udpDiag // nil once sock_diag is found not to support UDP
}

func newOwners(root string, now func() time.Time) *owners {
	return &owners{root: root, now: now, proc: netmon.NewProcIndex(root), diag: newUDPDiag()}
}

// lookup returns the owner of the UDP socket of client that talks to
// server, or the zero Process.
func (o *owners) lookup(client, server netip.AddrPort) Process {
	s, ok := o.socket(client, server)
	if !ok {
		return Process{}
	}
	p := Process{UID: s.UID, User: o.proc.User(s.UID)}
	pid, ok := o.proc.Owner(s.Inode)
	if !ok {
		now := o.now()
		o.tokens = min(scanBurst, o.tokens+now.Sub(o.lastScan).Seconds()*scansPerSecond)
		o.lastScan = now
		if o.tokens >= 1 {
			o.tokens--
			o.proc.Scan()
			pid, ok = o.proc.Owner(s.Inode)
		}
	}
	if ok {
		p.PID = pid
		p.Exe, p.ExeSHA256 = o.proc.Exe(pid)
	}
	return p
}

// socket finds the UDP socket that receives server's datagrams to
// client: over sock_diag, else in /proc/net/udp[6].
func (o *owners) socket(client, server netip.AddrPort) (netmon.Socket, bool) {
	if o.diag != nil {
		uid, inode, err := o.diag.lookup(client, server)
		switch {
		case err == nil:
			return netmon.Socket{UID: uid, Inode: inode}, inode != 0
		case errors.Is(err, unix.ENOENT):
			return netmon.Socket{}, false // closed already
		case errors.Is(err, unix.EPROTONOSUPPORT), errors.Is(err, unix.EINVAL), errors.Is(err, unix.EOPNOTSUPP):
			o.diag.close()
			o.diag = nil // no udp_diag in this kernel: the tables only
		}
	}
	return o.procSocket(client)
}

// procSocket finds the UDP socket bound to client's port and address (or
// to the wildcard address) in /proc/net/udp and udp6.
func (o *owners) procSocket(client netip.AddrPort) (netmon.Socket, bool) {
	o.socks = o.socks[:0]
	for _, name := range []string{"udp", "udp6"} {
		f, err := os.Open(filepath.Join(o.root, "net", name))
		if err != nil {
			continue
		}
		o.socks, _ = netmon.ParseProcNet(o.socks, f, netmon.ProtoUDP)
		f.Close()
	}
	var wild netmon.Socket
	found := false
	for _, s := range o.socks {
		if s.Local.Port() != client.Port() || s.Inode == 0 {
			continue
		}
		a := s.Local.Addr().Unmap()
		if a == client.Addr() {
			return s, true
		}
		if a.IsUnspecified() && !found {
			wild, found = s, true
		}
	}
	return wild, found
}

// close releases the sock_diag socket.
func (o *owners) close() {
	if o.diag != nil {
		o.diag.close()
	}
}
