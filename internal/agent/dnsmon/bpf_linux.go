package dnsmon

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// snapLen is the most of a packet the filter keeps: a whole IP packet.
const snapLen = 1 << 16

// bpfProgram is a classic BPF program being assembled, with jumps to
// labels resolved by build.
type bpfProgram struct {
	ins    []unix.SockFilter
	jt, jf []string // label of each instruction's true/false jump, "" for the next
	labels map[string]int
}

func (p *bpfProgram) op(code uint16, k uint32) {
	p.ins = append(p.ins, unix.SockFilter{Code: code, K: k})
	p.jt, p.jf = append(p.jt, ""), append(p.jf, "")
}

func (p *bpfProgram) jump(code uint16, k uint32, jt, jf string) {
	p.op(code, k)
	p.jt[len(p.jt)-1], p.jf[len(p.jf)-1] = jt, jf
}

func (p *bpfProgram) label(name string) {
	if p.labels == nil {
		p.labels = map[string]int{}
	}
	p.labels[name] = len(p.ins)
}

func (p *bpfProgram) build() ([]unix.SockFilter, error) {
	for i := range p.ins {
		for _, j := range []struct {
			label string
			dst   *uint8
		}{{p.jt[i], &p.ins[i].Jt}, {p.jf[i], &p.ins[i].Jf}} {
			if j.label == "" {
				continue
			}
			at, ok := p.labels[j.label]
			off := at - i - 1
			if !ok || off < 0 || off > 255 {
				return nil, fmt.Errorf("dnsmon: BPF jump to %q out of range", j.label)
			}
			*j.dst = uint8(off)
		}
	}
	return p.ins, nil
}

// dnsFilter returns a classic BPF program for an AF_PACKET SOCK_DGRAM
// socket (packets start at the IP header) that keeps unfragmented IPv4 UDP
// packets, and IPv6 UDP packets without extension headers, whose source or
// destination port is one of ports; and first IPv4 fragments of such
// packets and IPv6 first fragments of UDP packets on those ports, so that
// they are counted as lost rather than missed.
func dnsFilter(ports []uint16) ([]unix.SockFilter, error) {
	if len(ports) == 0 || len(ports) > MaxPorts {
		return nil, fmt.Errorf("dnsmon: %d ports, want 1 to %d", len(ports), MaxPorts)
	}
	const (
		ldB  = unix.BPF_LD | unix.BPF_B | unix.BPF_ABS
		ldH  = unix.BPF_LD | unix.BPF_H | unix.BPF_ABS
		ldHX = unix.BPF_LD | unix.BPF_H | unix.BPF_IND
		ldxM = unix.BPF_LDX | unix.BPF_B | unix.BPF_MSH
		and  = unix.BPF_ALU | unix.BPF_AND | unix.BPF_K
		jeq  = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		jset = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
		ret  = unix.BPF_RET | unix.BPF_K
	)
	var p bpfProgram
	anyPort := func(load uint16, off uint32) {
		p.op(load, off)
		for _, port := range ports {
			p.jump(jeq, uint32(port), "accept", "")
		}
	}
	p.op(ldB, 0)
	p.op(and, 0xf0)
	p.jump(jeq, 0x40, "", "v6")
	// IPv4: UDP only; a later fragment has no UDP header and is dropped
	// here (its first fragment is kept, and counted as lost).
	p.op(ldB, 9)
	p.jump(jeq, 17, "", "reject")
	p.op(ldH, 6)
	p.jump(jset, 0x1fff, "reject", "")
	p.op(ldxM, 0)
	anyPort(ldHX, 0)
	anyPort(ldHX, 2)
	p.op(ret, 0)
	p.label("v6")
	p.jump(jeq, 0x60, "", "reject")
	p.op(ldB, 6)
	p.jump(jeq, 44, "", "v6udp")
	// A first fragment of a UDP packet: kept, and counted as lost.
	p.op(ldB, 40)
	p.jump(jeq, 17, "", "reject")
	p.op(ldH, 42)
	p.jump(jset, 0xfff8, "reject", "")
	anyPort(ldH, 48)
	anyPort(ldH, 50)
	p.op(ret, 0)
	p.label("v6udp")
	p.jump(jeq, 17, "", "reject")
	anyPort(ldH, 40)
	anyPort(ldH, 42)
	p.label("reject")
	p.op(ret, 0)
	p.label("accept")
	p.op(ret, snapLen)
	return p.build()
}
