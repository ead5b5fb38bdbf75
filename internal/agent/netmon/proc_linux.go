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

// procIndex finds the processes owning socket inodes and describes them.
type procIndex struct {
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

func newProcIndex(root string) *procIndex {
	return &procIndex{
		root: root, owner: map[uint64]int{}, hashes: map[exeKey]string{},
		users: map[uint32]string{}, link: make([]byte, 64),
	}
}

// scan rebuilds the inode → pid map from /proc/<pid>/fd. Processes and fds
// that vanish or cannot be read (other users' processes when not root) are
// skipped.
func (p *procIndex) scan() {
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

func (p *procIndex) scanPID(pid int, name string) {
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

// exe returns the executable path and SHA-256 of pid, hashing each
// executable file once per (device, inode, mtime, size).
func (p *procIndex) exe(pid int) (string, string) {
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

// user returns the name of uid, or the uid in decimal.
func (p *procIndex) user(uid uint32) string {
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
