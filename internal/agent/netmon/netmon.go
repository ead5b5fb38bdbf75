// Package netmon logs network connections on the device (guideline 10.6):
// it polls the kernel's socket tables and reports each new inbound or
// outbound TCP or UDP flow once, with its owning process and Community ID.
//
// On Linux sockets are listed over NETLINK_SOCK_DIAG (inet_diag,
// INET_DIAG_REQ_V2), falling back to /proc/net/{tcp,tcp6,udp,udp6}; owning
// processes are found by matching socket inodes against /proc/<pid>/fd.
// Only the monitor's own network namespace is seen, and without root only
// the monitor's own processes can be attributed. Other systems are not
// supported (Poll returns ErrUnsupported).
//
// A Monitor is not safe for concurrent use: one goroutine calls Run or
// Poll. Flow values are plain data.
package netmon

import (
	"errors"
	"net/netip"
	"time"
)

// DefaultInterval is the polling interval when Config.Interval is zero.
const DefaultInterval = time.Second

// ErrUnsupported is returned on systems without a socket table source.
var ErrUnsupported = errors.New("netmon: not supported on this system")

// Backend selects where sockets are listed from.
type Backend string

// Backends.
const (
	BackendAuto    Backend = ""        // netlink, falling back to /proc/net if it fails
	BackendNetlink Backend = "netlink" // NETLINK_SOCK_DIAG only
	BackendProc    Backend = "proc"    // /proc/net/{tcp,tcp6,udp,udp6} only
)

// Config configures a Monitor. The zero value polls every second with the
// automatic backend.
type Config struct {
	// Interval between polls; 0 means DefaultInterval.
	Interval time.Duration
	// Backend lists sockets; "" means BackendAuto.
	Backend Backend
	// ProcRoot is where procfs is mounted; "" means /proc.
	ProcRoot string
	// CommunityIDSeed is the Community ID seed (0 unless the deployment
	// agreed on another).
	CommunityIDSeed uint16
	// SkipExisting suppresses the flows already open at the first poll;
	// otherwise they are reported by it.
	SkipExisting bool
	// Now is the clock for Flow.FirstSeen; nil means time.Now.
	Now func() time.Time
}

// Direction values.
const (
	Inbound  = "inbound"
	Outbound = "outbound"
)

// Flow is one new TCP or UDP flow, seen from the device.
type Flow struct {
	Protocol  string // "tcp" or "udp"
	Direction string // Inbound (the local port is a listening socket's) or Outbound
	State     string // kernel socket state when first seen, e.g. "ESTABLISHED", "TIME_WAIT"

	LocalIP    netip.Addr // IPv4-mapped addresses are unmapped
	LocalPort  uint16
	RemoteIP   netip.Addr
	RemotePort uint16

	// CommunityID is the Community ID v1 of the flow ("1:..."), the same
	// for both directions.
	CommunityID string

	// Inode is the socket inode; 0 when the socket was already closed by
	// its process (TIME_WAIT), in which case the process is unknown.
	Inode uint64
	// UID owns the socket; User is its name, or the uid in decimal if it
	// has none. Both are unknown (0 and "") when Inode is 0.
	UID  uint32
	User string
	// PID is the owning process, 0 if unknown; Exe its executable path and
	// ExeSHA256 the executable's SHA-256 (hex), empty if unknown.
	PID       int
	Exe       string
	ExeSHA256 string

	FirstSeen time.Time
}

// Src returns the address that opened the flow: the remote end for
// inbound flows, the local end for outbound ones.
func (f Flow) Src() netip.AddrPort {
	if f.Direction == Inbound {
		return netip.AddrPortFrom(f.RemoteIP, f.RemotePort)
	}
	return netip.AddrPortFrom(f.LocalIP, f.LocalPort)
}

// Dst returns the address the flow was opened to.
func (f Flow) Dst() netip.AddrPort {
	if f.Direction == Inbound {
		return netip.AddrPortFrom(f.LocalIP, f.LocalPort)
	}
	return netip.AddrPortFrom(f.RemoteIP, f.RemotePort)
}
