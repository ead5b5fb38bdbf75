// Package tpm gives the agent access to a TPM 2.0 and keeps its device key
// inside it.
//
// # Backends
//
// Open takes a spec naming the TPM:
//
//   - a device path such as "/dev/tpmrm0": the kernel resource manager
//     (use the "rm" node, not /dev/tpm0, so that other TPM users' objects
//     are swapped in and out for us);
//   - "swtpm:HOST:PORT": swtpm's server (command) socket over TCP, as
//     started by `swtpm socket --tpm2 --server type=tcp,port=PORT`. Open
//     sends TPM2_Startup, so swtpm need not be given --flags startup-clear;
//   - "sim": the in-process reference simulator, for tests. It is linked
//     only into binaries that import internal/tpm/tpmsim (it needs cgo), so
//     the production agent does not carry it.
//
// # Concurrency
//
// A TPM executes one command at a time, and a transport carries one
// command/response pair at a time, so every command sent through a *TPM is
// serialized by a mutex. A *TPM and the Keys made from it are safe for
// concurrent use; a signature waits for any command in flight. Real TPMs
// sign in the order of 100 ms, so callers should reuse TLS sessions rather
// than sign per request.
//
// Commands that a TPM answers with TPM_RC_RETRY, TPM_RC_YIELDED or
// TPM_RC_TESTING (swtpm does so for the first ECDSA signature, while it
// self-tests the algorithm) are resent with backoff on every backend.
//
// # Object slots
//
// TPMs (and especially the simulator) hold only a few transient objects.
// The storage root key is created, used and flushed within each
// CreateDeviceKey / LoadDeviceKey call; a Key holds one slot until its
// Close.
package tpm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
)

// TPM is an open TPM. Commands are serialized; see the package comment.
type TPM struct {
	mu     sync.Mutex
	t      transport.TPMCloser
	closed bool

	// ekTemplates are the endorsement key templates tried in order; nil
	// means the TCG defaults, RSA 2048 then ECC P-256 (see EK). Tests set
	// it to exercise the ECC endorsement key.
	ekTemplates []tpm2.TPMTPublic
}

// SimulatorOpener opens the in-process simulator. internal/tpm/tpmsim sets
// it; it is nil in binaries that do not link the simulator.
var SimulatorOpener func() (io.ReadWriteCloser, error)

// Open opens the TPM named by spec: "sim", a device path such as
// "/dev/tpmrm0", or "swtpm:HOST:PORT".
func Open(spec string) (*TPM, error) {
	switch {
	case spec == "sim":
		if SimulatorOpener == nil {
			return nil, errors.New(`tpm: the "sim" backend is not linked into this binary (import internal/tpm/tpmsim)`)
		}
		rwc, err := SimulatorOpener()
		if err != nil {
			return nil, fmt.Errorf("tpm: opening simulator: %w", err)
		}
		return &TPM{t: retrying{transport.FromReadWriteCloser(rwc)}}, nil
	case strings.HasPrefix(spec, "swtpm:"):
		addr := strings.TrimPrefix(spec, "swtpm:")
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("tpm: %q: want swtpm:HOST:PORT: %w", spec, err)
		}
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			return nil, fmt.Errorf("tpm: connecting to swtpm: %w", err)
		}
		t := &TPM{t: retrying{&streamTPM{c: c}}}
		if err := t.startup(); err != nil {
			c.Close()
			return nil, err
		}
		return t, nil
	case strings.HasPrefix(spec, "/"):
		d, err := linuxtpm.Open(spec)
		if err != nil {
			return nil, fmt.Errorf("tpm: opening %s: %w", spec, err)
		}
		return &TPM{t: retrying{d}}, nil
	default:
		return nil, fmt.Errorf("tpm: unknown TPM %q (want sim, a device path such as /dev/tpmrm0, or swtpm:HOST:PORT)", spec)
	}
}

// startup sends TPM2_Startup(CLEAR); a TPM that is already started answers
// TPM_RC_INITIALIZE, which is fine.
func (t *TPM) startup() error {
	_, err := t.exec(func(tt transport.TPM) (any, error) {
		return tpm2.Startup{StartupType: tpm2.TPMSUClear}.Execute(tt)
	})
	if err != nil && !errors.Is(err, tpm2.TPMRCInitialize) {
		return fmt.Errorf("tpm: startup: %w", err)
	}
	return nil
}

// exec runs f with the TPM locked.
func (t *TPM) exec(f func(transport.TPM) (any, error)) (any, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, errors.New("tpm: use of closed TPM")
	}
	return f(t.t)
}

// Close closes the connection to the TPM. Keys made from it stop working;
// close them first so that their slots are freed.
func (t *TPM) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	return t.t.Close()
}

// retrying resends a command the TPM answered with TPM_RC_RETRY,
// TPM_RC_YIELDED or TPM_RC_TESTING (for example while it self-tests an
// algorithm on first use), backing off from 1 ms to 1 s, for up to about
// 20 s.
type retrying struct {
	transport.TPMCloser
}

func (r retrying) Send(cmd []byte) ([]byte, error) {
	wait := time.Millisecond
	deadline := time.Now().Add(20 * time.Second)
	for {
		rsp, err := r.TPMCloser.Send(cmd)
		if err != nil || len(rsp) < 10 {
			return rsp, err
		}
		switch tpm2.TPMRC(binary.BigEndian.Uint32(rsp[6:10])) {
		case tpm2.TPMRCRetry, tpm2.TPMRCYielded, tpm2.TPMRCTesting:
			if time.Now().After(deadline) {
				return rsp, nil
			}
			time.Sleep(wait)
			wait = min(2*wait, time.Second)
		default:
			return rsp, nil
		}
	}
}

// streamTPM speaks raw TPM commands over a byte stream (swtpm's server
// socket), reading each response by its header's size field.
type streamTPM struct {
	c net.Conn
}

const maxResponse = 1 << 16

func (s *streamTPM) Send(cmd []byte) ([]byte, error) {
	s.c.SetDeadline(time.Now().Add(2 * time.Minute))
	if _, err := s.c.Write(cmd); err != nil {
		return nil, fmt.Errorf("swtpm: %w", err)
	}
	hdr := make([]byte, 10)
	if _, err := io.ReadFull(s.c, hdr); err != nil {
		return nil, fmt.Errorf("swtpm: reading response: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[2:6])
	if n < 10 || n > maxResponse {
		return nil, fmt.Errorf("swtpm: bad response size %d", n)
	}
	rsp := make([]byte, n)
	copy(rsp, hdr)
	if _, err := io.ReadFull(s.c, rsp[10:]); err != nil {
		return nil, fmt.Errorf("swtpm: reading response: %w", err)
	}
	return rsp, nil
}

func (s *streamTPM) Close() error { return s.c.Close() }
