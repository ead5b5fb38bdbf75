// Package tpm gives the agent access to a TPM 2.0, keeps its device key
// inside it, and performs the agent's side of TPM attestation.
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
// serialized by a mutex. A *TPM and the Keys and AKs made from it are safe for
// concurrent use; a signature waits for any command in flight. Real TPMs
// sign in the order of 100 ms, so callers should reuse TLS sessions rather
// than sign per request.
//
// Commands that a TPM answers with TPM_RC_RETRY, TPM_RC_YIELDED or
// TPM_RC_TESTING (swtpm does so for the first ECDSA signature, while it
// self-tests the algorithm) are resent with backoff on every backend.
//
// # Attestation
//
// The byte fields this package produces (api.AKParameters,
// api.CertifyParameters, api.Evidence) are TPM wire structures exactly as
// github.com/google/go-attestation reads them on the server; the package
// builds them with go-tpm's tpm2 package and does not link go-attestation
// (its tests verify every structure with it). The flows:
//
//   - Enrolment. CreateDeviceKey and CreateAK create the device key and a
//     restricted ECDSA P-256 attestation key (AK) under the storage root
//     key; the AK certifies its own creation (TPM2_CertifyCreation).
//     Enrollment gathers the endorsement key (EK: public key and the
//     vendor's certificate from NV), the AK's Parameters and the device
//     key certified by the AK (AK.Certify, TPM2_Certify). Persist the
//     blobs of both keys and the AK's Parameters (LoadAK checks them).
//   - Activation. The server answers with a credential encrypted to the EK
//     and bound to the AK's name; AK.ActivateCredential decrypts it inside
//     the TPM (TPM2_ActivateCredential, the EK authorized with
//     TPM2_PolicySecret on the endorsement hierarchy), which proves the AK
//     lives in the TPM that owns the EK.
//   - Attestation. AK.Quote signs the SHA-256 PCR bank with the server's
//     nonce (TPM2_Quote) and returns the PCR values with it; Platform adds
//     the measured-boot event log, the IMA list and the SecureBoot state.
//     ExtendPCR emulates measured boot in tests.
//
// # Object slots
//
// TPMs (and especially the simulator, which holds three) hold only a few
// transient objects. The storage root key is created, used and flushed
// within each CreateDeviceKey / LoadDeviceKey / CreateAK / LoadAK call,
// and the endorsement key within each EK, Enrollment and
// ActivateCredential call; a Key or an AK holds one slot until its Close.
// With the device key and the AK loaded, one slot remains, which these
// calls need.
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
