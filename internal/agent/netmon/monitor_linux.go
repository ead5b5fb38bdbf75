package netmon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/bulwark-iot/bulwark/internal/communityid"
)

// Monitor polls the socket tables and reports new flows.
type Monitor struct {
	cfg      Config
	diag     sockDiag
	proc     *ProcIndex
	socks    []Socket
	seen     map[flowKey]*flowState // flows of the last (and current) poll
	gen      uint64                 // poll count
	listen   map[listenKey]struct{}
	polled   bool
	backend  Backend
	fallback error // why BackendAuto fell back to /proc, if it did
}

// flowKey is a flow's 5-tuple in a compact, cheaply hashed form.
type flowKey struct {
	local, remote [16]byte
	lport, rport  uint16
	proto         uint8
}

func keyOf(s *Socket) flowKey {
	return flowKey{s.Local.Addr().As16(), s.Remote.Addr().As16(), s.Local.Port(), s.Remote.Port(), s.Proto}
}

// flowID tells apart two sockets with the same 5-tuple: by cookie when the
// source has cookies (sock_diag), else by inode, which a socket loses when
// it enters TIME_WAIT (0 then matches any inode).
type flowID struct{ cookie, inode uint64 }

// flowState is what the monitor remembers of a flow.
type flowState struct {
	id  flowID
	gen uint64 // last poll that listed it
}

func (a flowID) same(b flowID) bool {
	if a.cookie != 0 && b.cookie != 0 {
		return a.cookie == b.cookie
	}
	return a.inode == b.inode || a.inode == 0 || b.inode == 0
}

type listenKey struct {
	proto uint8
	port  uint16
	addr  netip.Addr // unmapped; the unspecified address of its family for wildcards
}

// New returns a Monitor; it does nothing until Run or Poll is called.
func New(cfg Config) *Monitor {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Monitor{
		cfg: cfg, proc: NewProcIndex(cfg.ProcRoot),
		seen: map[flowKey]*flowState{}, listen: map[listenKey]struct{}{},
	}
}

// Backend reports the backend the last poll used.
func (m *Monitor) Backend() Backend { return m.backend }

// Run polls every Config.Interval until ctx ends, calling emit for each new
// flow from the calling goroutine, and returns ctx's error. A failed poll is
// returned as an error unless ctx has ended.
func (m *Monitor) Run(ctx context.Context, emit func(Flow)) error {
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		flows, err := m.Poll()
		if err != nil {
			return err
		}
		for _, f := range flows {
			emit(f)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// list fills m.socks from the configured backend.
func (m *Monitor) list() error {
	m.socks = m.socks[:0]
	var err error
	switch m.cfg.Backend {
	case BackendNetlink:
		m.backend = BackendNetlink
		m.socks, err = m.diag.list(m.socks)
		return err
	case BackendProc:
		m.backend = BackendProc
		return m.listProc()
	case BackendAuto:
		if m.fallback == nil {
			m.backend = BackendNetlink
			if m.socks, err = m.diag.list(m.socks); err == nil {
				return nil
			}
			m.fallback = err
			m.socks = m.socks[:0]
		}
		m.backend = BackendProc
		if perr := m.listProc(); perr != nil {
			return errors.Join(m.fallback, perr)
		}
		return nil
	}
	return fmt.Errorf("netmon: unknown backend %q", m.cfg.Backend)
}

func (m *Monitor) listProc() error {
	for _, f := range []struct {
		name  string
		proto uint8
	}{{"tcp", ProtoTCP}, {"tcp6", ProtoTCP}, {"udp", ProtoUDP}, {"udp6", ProtoUDP}} {
		fh, err := os.Open(m.cfg.ProcRoot + "/net/" + f.name)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && (f.name == "tcp6" || f.name == "udp6") {
				continue // IPv6 disabled
			}
			return fmt.Errorf("netmon: %w", err)
		}
		m.socks, err = ParseProcNet(m.socks, fh, f.proto)
		fh.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// isFlow reports whether s is a flow: a TCP connection past the handshake
// (including TIME_WAIT, so short connections are not missed) or a
// connected UDP socket.
func isFlow(s *Socket) bool {
	if s.Remote.Port() == 0 {
		return false
	}
	if s.Proto == ProtoUDP {
		return true
	}
	switch s.State {
	case StateListen, StateSynRecv, StateNewSynRecv, StateClose:
		return false
	}
	return true
}

// isListener reports whether s accepts flows: a listening TCP socket or a
// bound, unconnected UDP socket.
func isListener(s *Socket) bool {
	if s.Proto == ProtoTCP {
		return s.State == StateListen
	}
	return s.Remote.Port() == 0 && s.Local.Port() != 0
}

func (m *Monitor) inbound(proto uint8, local netip.AddrPort) bool {
	a := local.Addr().Unmap()
	for _, k := range [...]listenKey{
		{proto, local.Port(), a},
		{proto, local.Port(), netip.IPv4Unspecified()},
		{proto, local.Port(), netip.IPv6Unspecified()},
	} {
		if _, ok := m.listen[k]; ok {
			return true
		}
	}
	return false
}

// Poll lists the sockets once and returns the flows not seen by the
// previous poll. Flows that disappear are forgotten, so a later flow with
// the same addresses is reported again.
func (m *Monitor) Poll() ([]Flow, error) {
	if err := m.list(); err != nil {
		return nil, err
	}
	first := !m.polled
	m.polled = true

	// Listeners of this poll and the previous one: a connection accepted
	// just before its listener closed still counts as inbound.
	prevListen := m.listen
	m.listen = make(map[listenKey]struct{}, len(prevListen))
	for i := range m.socks {
		s := &m.socks[i]
		if isListener(s) {
			m.listen[listenKey{s.Proto, s.Local.Port(), s.Local.Addr().Unmap()}] = struct{}{}
		}
	}
	for k := range prevListen {
		m.listen[k] = struct{}{}
	}

	m.gen++
	var fresh []int
	needScan := false
	for i := range m.socks {
		s := &m.socks[i]
		if !isFlow(s) {
			continue
		}
		k := keyOf(s)
		id := flowID{s.Cookie, s.Inode}
		if st, ok := m.seen[k]; !ok {
			m.seen[k] = &flowState{id, m.gen}
		} else {
			known := st.id.same(id)
			if known && id.inode == 0 {
				id.inode = st.id.inode // keep the inode across TIME_WAIT
			}
			st.id, st.gen = id, m.gen
			if known {
				continue // seen by the last poll, or listed twice by this one
			}
			// The same addresses and ports, but another socket.
		}
		fresh = append(fresh, i)
		if s.Inode != 0 {
			if _, known := m.proc.Owner(s.Inode); !known {
				needScan = true
			}
		}
	}
	for k, st := range m.seen {
		if st.gen != m.gen {
			delete(m.seen, k) // closed: forget it
		}
	}
	if first && m.cfg.SkipExisting || len(fresh) == 0 {
		return nil, nil
	}
	if needScan {
		m.proc.Scan()
	}
	now := m.cfg.Now()
	flows := make([]Flow, 0, len(fresh))
	exes := map[int][2]string{}
	for _, i := range fresh {
		s := &m.socks[i]
		f := Flow{
			Protocol:   "tcp",
			Direction:  Outbound,
			State:      StateName(s.State),
			LocalIP:    s.Local.Addr().Unmap(),
			LocalPort:  s.Local.Port(),
			RemoteIP:   s.Remote.Addr().Unmap(),
			RemotePort: s.Remote.Port(),
			Inode:      s.Inode,
			FirstSeen:  now,
		}
		if s.Inode != 0 { // the kernel reports uid 0 for TIME_WAIT sockets
			f.UID, f.User = s.UID, m.proc.User(s.UID)
		}
		if s.Proto == ProtoUDP {
			f.Protocol = "udp"
		}
		if m.inbound(s.Proto, s.Local) {
			f.Direction = Inbound
		}
		f.CommunityID, _ = communityid.ID(m.cfg.CommunityIDSeed, communityid.Tuple{
			Proto: s.Proto, SrcIP: f.LocalIP, DstIP: f.RemoteIP, SrcPort: f.LocalPort, DstPort: f.RemotePort,
		})
		if s.Inode != 0 {
			if pid, ok := m.proc.Owner(s.Inode); ok {
				f.PID = pid
				e, ok := exes[pid]
				if !ok {
					e[0], e[1] = m.proc.Exe(pid)
					exes[pid] = e
				}
				f.Exe, f.ExeSHA256 = e[0], e[1]
			}
		}
		flows = append(flows, f)
	}
	return flows, nil
}
