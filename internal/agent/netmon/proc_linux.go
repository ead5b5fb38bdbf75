package netmon

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// maxHashCache bounds the executable hash cache; it is emptied when full.
const maxHashCache = 4096

// ProcIndex finds the processes owning socket inodes and describes them
// (their executable with its SHA-256, their user), from /proc. The DNS
// monitor uses it too. A ProcIndex is used by one goroutine at a time.
type ProcIndex struct {
	root   string
	owner  map[uint64]int // socket inode → pid, from the last scan
	hashes map[exeKey]string
	users  map[uint32]string
	link   []byte
}

// exeKey identifies the content of an executable file.
type exeKey struct {
	dev, ino  uint64
	mtimeSec  int64
	mtimeNsec int64
	size      int64
}

// NewProcIndex returns an index over the proc file system at root
// ("/proc" normally).
func NewProcIndex(root string) *ProcIndex {
	return &ProcIndex{
		root: root, owner: map[uint64]int{}, hashes: map[exeKey]string{},
		users: map[uint32]string{}, link: make([]byte, 64),
	}
}

// Scan rebuilds the inode → pid map from /proc/<pid>/fd. Processes and fds
// that vanish or cannot be read (other users' processes when not root) are
// skipped.
func (p *ProcIndex) Scan() {
	clear(p.owner)
	d, err := os.Open(p.root)
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
		p.scanPID(pid, name)
	}
}

var socketPrefix = []byte("socket:[")

// Owner returns the process holding the socket inode at the last Scan.
func (p *ProcIndex) Owner(inode uint64) (pid int, ok bool) {
	pid, ok = p.owner[inode]
	return pid, ok
}

func (p *ProcIndex) scanPID(pid int, name string) {
	f, err := os.Open(p.root + "/" + name + "/fd")
	if err != nil {
		return
	}
	defer f.Close()
	fds, _ := f.Readdirnames(-1)
	dfd := int(f.Fd())
	for _, fd := range fds {
		n, err := unix.Readlinkat(dfd, fd, p.link)
		if err != nil || n < len(socketPrefix)+2 || !bytes.HasPrefix(p.link[:n], socketPrefix) || p.link[n-1] != ']' {
			continue
		}
		ino, err := strconv.ParseUint(string(p.link[len(socketPrefix):n-1]), 10, 64)
		if err == nil {
			p.owner[ino] = pid
		}
	}
}

// Exe returns the executable path and SHA-256 of pid, hashing each
// executable file once per (device, inode, mtime, size).
func (p *ProcIndex) Exe(pid int) (path, digest string) {
	link := filepath.Join(p.root, strconv.Itoa(pid), "exe")
	path, err := os.Readlink(link)
	if err != nil {
		return "", ""
	}
	var st unix.Stat_t
	if err := unix.Stat(link, &st); err != nil {
		return path, ""
	}
	k := exeKey{dev: st.Dev, ino: st.Ino, mtimeSec: st.Mtim.Sec, mtimeNsec: st.Mtim.Nsec, size: st.Size}
	if h, ok := p.hashes[k]; ok {
		return path, h
	}
	f, err := os.Open(link) // the running image, even if the path was replaced
	if err != nil {
		return path, ""
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return path, ""
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if len(p.hashes) >= maxHashCache {
		clear(p.hashes)
	}
	p.hashes[k] = sum
	return path, sum
}

// User returns the name of uid, or the uid in decimal.
func (p *ProcIndex) User(uid uint32) string {
	if n, ok := p.users[uid]; ok {
		return n
	}
	s := strconv.FormatUint(uint64(uid), 10)
	name := s
	if u, err := user.LookupId(s); err == nil {
		name = u.Username
	}
	if len(p.users) >= maxHashCache {
		clear(p.users)
	}
	p.users[uid] = name
	return name
}
