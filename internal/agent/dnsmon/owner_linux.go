package dnsmon

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent/netmon"
	"golang.org/x/sys/unix"
)

const (
	// scansPerSecond and scanBurst bound the scans of /proc/<pid>/fd for
	// sockets not yet known, which cost the most: a token bucket.
	scansPerSecond = 10
	scanBurst      = 10
	// maxCache bounds each cache; a full one is emptied.
	maxCache = 4096
)

// owners finds the process owning a UDP socket by its local address:
// the socket's inode from /proc/net/udp[6] (the table netmon reads), then
// the process holding that inode among /proc/<pid>/fd.
type owners struct {
	root     string
	now      func() time.Time
	socks    []netmon.Socket
	inodePID map[uint64]int
	lastScan time.Time
	tokens   float64
	hashes   map[exeKey]string
	users    map[uint32]string
	link     []byte
	diag     *udpDiag // nil once sock_diag is found not to support UDP
}

type exeKey struct {
	dev, ino            uint64
	mtimeSec, mtimeNsec int64
	size                int64
}

func newOwners(root string, now func() time.Time) *owners {
	return &owners{root: root, now: now, inodePID: map[uint64]int{}, hashes: map[exeKey]string{}, users: map[uint32]string{}, link: make([]byte, 64), diag: newUDPDiag()}
}

// lookup returns the owner of the UDP socket of client that talks to
// server, or the zero Process.
func (o *owners) lookup(client, server netip.AddrPort) Process {
	s, ok := o.socket(client, server)
	if !ok {
		return Process{}
	}
	p := Process{UID: s.UID, User: o.user(s.UID)}
	pid, ok := o.inodePID[s.Inode]
	if !ok {
		now := o.now()
		o.tokens = min(scanBurst, o.tokens+now.Sub(o.lastScan).Seconds()*scansPerSecond)
		o.lastScan = now
		if o.tokens >= 1 {
			o.tokens--
			o.scan()
			pid, ok = o.inodePID[s.Inode]
		}
	}
	if ok {
		p.PID = pid
		p.Exe, p.ExeSHA256 = o.exe(pid)
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

var socketPrefix = []byte("socket:[")

// scan rebuilds the inode -> pid map from /proc/<pid>/fd.
func (o *owners) scan() {
	clear(o.inodePID)
	d, err := os.Open(o.root)
	if err != nil {
		return
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil || pid <= 0 {
			continue
		}
		f, err := os.Open(filepath.Join(o.root, name, "fd"))
		if err != nil {
			continue
		}
		fds, _ := f.Readdirnames(-1)
		dfd := int(f.Fd())
		for _, fd := range fds {
			n, err := unix.Readlinkat(dfd, fd, o.link)
			if err != nil || n < len(socketPrefix)+2 || !bytes.HasPrefix(o.link[:n], socketPrefix) || o.link[n-1] != ']' {
				continue
			}
			if ino, err := strconv.ParseUint(string(o.link[len(socketPrefix):n-1]), 10, 64); err == nil {
				o.inodePID[ino] = pid
			}
		}
		f.Close()
	}
}

// exe returns the executable path and SHA-256 of pid, hashing each file
// once per (device, inode, mtime, size).
func (o *owners) exe(pid int) (string, string) {
	link := filepath.Join(o.root, strconv.Itoa(pid), "exe")
	path, err := os.Readlink(link)
	if err != nil {
		return "", ""
	}
	var st unix.Stat_t
	if err := unix.Stat(link, &st); err != nil {
		return path, ""
	}
	k := exeKey{dev: st.Dev, ino: st.Ino, mtimeSec: st.Mtim.Sec, mtimeNsec: st.Mtim.Nsec, size: st.Size}
	if h, ok := o.hashes[k]; ok {
		return path, h
	}
	f, err := os.Open(link)
	if err != nil {
		return path, ""
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return path, ""
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if len(o.hashes) >= maxCache {
		clear(o.hashes)
	}
	o.hashes[k] = sum
	return path, sum
}

// user returns the name of uid, or the uid in decimal.
func (o *owners) user(uid uint32) string {
	if n, ok := o.users[uid]; ok {
		return n
	}
	name := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	if len(o.users) >= maxCache {
		clear(o.users)
	}
	o.users[uid] = name
	return name
}

// close releases the sock_diag socket.
func (o *owners) close() {
	if o.diag != nil {
		o.diag.close()
	}
}
