package dnsmon

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// pollInterval is how often Run wakes without packets, to expire queries
// and read the kernel's drop counter.
const pollInterval = 200 * time.Millisecond

// Monitor captures DNS traffic. It is used by one goroutine.
type Monitor struct {
	cfg Config
}

// New returns a Monitor; it does nothing until Run.
func New(cfg Config) *Monitor {
	if len(cfg.Ports) == 0 {
		cfg.Ports = []uint16{53}
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Monitor{cfg: cfg}
}

// Run captures until ctx ends, calling h from the calling goroutine; when
// ctx ends it reports the queries still waiting for a response as
// unanswered and returns nil. It returns an error wrapping ErrUnsupported
// at once if the capture socket cannot be opened for want of privilege,
// and another error if the socket fails.
func (m *Monitor) Run(ctx context.Context, h Handler) error {
	fd, err := openCapture(m.cfg.Ports)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var owner func(client, server netip.AddrPort) Process
	if !m.cfg.NoProcess {
		o := newOwners(m.cfg.ProcRoot, m.cfg.Now)
		defer o.close()
		owner = o.lookup
	}
	t := newTracker(m.cfg, h, owner)
	defer t.flush()
	buf := make([]byte, snapLen)
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	lastStats := m.cfg.Now()
	for {
		if ctx.Err() != nil {
			return nil
		}
		_, err := unix.Poll(pfd, int(pollInterval/time.Millisecond))
		if err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("dnsmon: poll: %w", err)
		}
		// Read what is queued, a bounded number at a time so that the
		// context and the timeouts are looked at.
		for i := 0; i < 1024; i++ {
			n, from, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				break
			}
			if err != nil {
				return fmt.Errorf("dnsmon: read: %w", err)
			}
			// On loopback the kernel shows each packet twice, going out
			// and coming in: keep one (as libpcap does).
			if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING && ll.Hatype == unix.ARPHRD_LOOPBACK {
				continue
			}
			t.packet(buf[:min(n, len(buf))], m.cfg.Now())
		}
		now := m.cfg.Now()
		t.expire(now)
		if now.Sub(lastStats) >= time.Second {
			lastStats = now
			// Reading the statistics resets them.
			if st, err := unix.GetsockoptTpacketStats(fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil && st.Drops > 0 {
				h.Lost(LostKernel, uint64(st.Drops))
			}
		}
	}
}

// openCapture opens an AF_PACKET socket that receives, on every interface,
// the IP packets that dnsFilter keeps. The filter is attached before the
// socket is bound to a protocol, so nothing unfiltered is queued.
func openCapture(ports []uint16) (int, error) {
	filter, err := dnsFilter(ports)
	if err != nil {
		return -1, err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.EAFNOSUPPORT) {
			return -1, fmt.Errorf("%w: opening a packet socket needs CAP_NET_RAW: %v", ErrUnsupported, err)
		}
		return -1, fmt.Errorf("dnsmon: open packet socket: %w", err)
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("dnsmon: attach BPF filter: %w", err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20) // best effort
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL)}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("dnsmon: bind packet socket: %w", err)
	}
	// Reset the drop counter.
	unix.GetsockoptTpacketStats(fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	return fd, nil
}

// htons converts to network byte order.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
