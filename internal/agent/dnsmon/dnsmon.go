// Package dnsmon observes the DNS queries the device sends over UDP and
// their responses (guideline 10.6, "DNS queries where observable").
//
// On Linux a Monitor reads a copy of every IPv4 and IPv6 UDP packet to or
// from the DNS ports (53 unless configured) from an AF_PACKET socket with a
// classic BPF filter, on every interface of its network namespace. It
// pairs each query with its response by (client address and port, server
// address and port, message id), within a timeout: a query without a
// response is reported when the timeout passes, and a response whose query
// was not seen is reported on its own. The owning process of a query is
// found, best effort, when the query is seen: its socket by an exact
// NETLINK_SOCK_DIAG request (falling back to the UDP socket tables
// /proc/net/udp and udp6 that netmon reads), then the process holding that
// socket among /proc/<pid>/fd.
// Capturing needs CAP_NET_RAW; without it, and on other systems, Run
// returns an error wrapping ErrUnsupported.
//
// Not observed: DNS over TCP, DNS over TLS (853) or HTTPS (DoH), queries in
// IP fragments or behind IPv6 extension headers (counted as lost), and
// other network namespaces.
//
// ParseMessage and ParsePacket are pure functions, safe for concurrent use;
// they parse input from the network strictly and never panic. A Monitor
// is used by one goroutine (Run); Query values are plain data.
package dnsmon

import (
	"errors"
	"net/netip"
	"strconv"
	"time"
)

// ErrUnsupported is returned (wrapped) by Run when packets cannot be
// captured: not Linux, or no CAP_NET_RAW.
var ErrUnsupported = errors.New("dnsmon: DNS capture is not supported here")

// Defaults of Config.
const (
	DefaultTimeout    = 5 * time.Second
	DefaultMaxPending = 4096
	// MaxAnswers bounds Query.Answers.
	MaxAnswers = 16
	// MaxPorts bounds Config.Ports.
	MaxPorts = 16
)

// Config configures a Monitor. The zero value watches port 53 with the
// default timeout and bounds.
type Config struct {
	// Ports are the DNS server ports watched (either end of a UDP packet);
	// empty means 53. At most MaxPorts.
	Ports []uint16
	// Timeout is how long a query waits for its response before it is
	// reported unanswered; zero means DefaultTimeout.
	Timeout time.Duration
	// MaxPending bounds the queries waiting for a response; when full the
	// oldest is reported unanswered. Zero means DefaultMaxPending.
	MaxPending int
	// CommunityIDSeed is the Community ID seed (0 unless the deployment
	// agreed on another).
	CommunityIDSeed uint16
	// ProcRoot is where procfs is mounted; "" means /proc.
	ProcRoot string
	// NoProcess turns off the lookup of owning processes.
	NoProcess bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Query is one DNS query and, if seen, its response.
type Query struct {
	// Time is when the query was seen (the response, if the query was
	// not).
	Time   time.Time
	Client netip.AddrPort // sender of the query (IPv4-mapped addresses unmapped)
	Server netip.AddrPort
	ID     uint16 // message id
	Name   string // question name in presentation form, lower-case, no trailing dot ("." for the root)
	Type   uint16 // question type
	// QuerySeen is false when only the response was seen.
	QuerySeen bool
	// Answered tells whether a response was seen; RCode, Truncated,
	// AnswerCount and Answers are from it.
	Answered    bool
	RCode       uint8
	Truncated   bool
	AnswerCount int      // records in the answer section, of any type
	Answers     []Answer // its A, AAAA and CNAME records of class IN, at most MaxAnswers
	CommunityID string
	// Process owned the client socket; zero if not found.
	Process Process
}

// Answer is an A, AAAA or CNAME record.
type Answer struct {
	Type   uint16 // TypeA, TypeAAAA or TypeCNAME
	TTL    uint32
	Addr   netip.Addr // A, AAAA
	Target string     // CNAME, in the form of Query.Name
}

// Process is the owner of a socket.
type Process struct {
	PID       int
	UID       uint32
	User      string // user name, or the uid in decimal; "" if unknown
	Exe       string
	ExeSHA256 string // hex
}

// Handler receives what a Monitor observes, from Run's goroutine.
type Handler interface {
	// Query reports a query (answered or not) or a lone response.
	Query(q *Query)
	// Lost reports packets on the DNS ports that were not turned into a
	// Query: reason is LostKernel (dropped by the kernel before the
	// monitor read them), LostFragment (IP fragments), LostMalformed (not
	// a DNS message ParseMessage accepts, or an IPv6 packet with extension
	// headers) or LostNotQuery (DNS messages other than standard queries
	// and their responses, e.g. NOTIFY or UPDATE).
	Lost(reason string, packets uint64)
}

// Reasons given to Handler.Lost.
const (
	LostKernel    = "dropped by the kernel"
	LostFragment  = "IP fragment"
	LostMalformed = "malformed"
	LostNotQuery  = "not a standard query"
)

// Record types.
const (
	TypeA     = 1
	TypeNS    = 2
	TypeCNAME = 5
	TypeSOA   = 6
	TypePTR   = 12
	TypeMX    = 15
	TypeTXT   = 16
	TypeAAAA  = 28
	TypeSRV   = 33
	TypeOPT   = 41
	TypeSVCB  = 64
	TypeHTTPS = 65
	TypeANY   = 255
)

var typeNames = map[uint16]string{
	TypeA: "A", TypeNS: "NS", TypeCNAME: "CNAME", TypeSOA: "SOA", TypePTR: "PTR", TypeMX: "MX",
	TypeTXT: "TXT", TypeAAAA: "AAAA", TypeSRV: "SRV", TypeOPT: "OPT", TypeSVCB: "SVCB", TypeHTTPS: "HTTPS",
	TypeANY: "ANY", 43: "DS", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 50: "NSEC3", 52: "TLSA", 99: "SPF",
	252: "AXFR", 251: "IXFR", 257: "CAA", 35: "NAPTR", 13: "HINFO", 44: "SSHFP",
}

// TypeName returns the mnemonic of a record type, or "TYPEn" (RFC 3597).
func TypeName(t uint16) string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return "TYPE" + strconv.Itoa(int(t))
}

// rcodeNames are OCSF 1.3.0's captions of rcode_id 0..10.
var rcodeNames = [...]string{"NoError", "FormError", "ServError", "NXDomain", "NotImp", "Refused", "YXDomain", "YXRRSet", "NXRRSet", "NotAuth", "NotZone"}

// RCodeName returns the OCSF name of a response code, or "RCODEn".
func RCodeName(rc uint8) string {
	if int(rc) < len(rcodeNames) {
		return rcodeNames[rc]
	}
	return "RCODE" + strconv.Itoa(int(rc))
}
