// Package agenttest is a fake Bulwark device API for agent tests: an
// in-process HTTPS server (TLS 1.3, HTTP/2, client certificates requested)
// that really implements enrolment, renewal, check-in and the command long
// poll with a throw-away CA, keeping its state in memory.
//
// It is not the real server: it implements just enough of the device API's
// behaviour and error codes to exercise the agent. A Server is safe for
// concurrent use.
package agenttest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
)

// Server is the fake device API.
type Server struct {
	*httptest.Server
	// CAPEM is the trust anchor for the server certificate, to pass to
	// enroll --ca-cert.
	CAPEM []byte
	// Token is the enrolment token the server accepts.
	Token string

	caKey  *ecdsa.PrivateKey
	caCert *x509.Certificate

	mu         sync.Mutex
	changed    chan struct{} // closed and replaced on every change
	serial     int64
	devices    map[string]*Device
	lifetime   time.Duration
	backdate   time.Duration
	interval   int
	failEnroll *api.Error
	failRenew  *api.Error
	failCheck  *api.Error
}

// Device is the server's record of one device.
type Device struct {
	ID        string
	PublicKey crypto.PublicKey
	Revoked   bool
	Enrolls   []api.EnrollRequest
	Checkins  []api.CheckinRequest
	Renewals  int
	Polls     int
	// Refused counts requests refused because the device is revoked.
	Refused int
	// Serial is the serial of the certificate of the last authenticated
	// request.
	Serial int64
	// Proto is the protocol of the last authenticated request.
	Proto string
	// PollSerial is the serial of the certificate of the last long poll.
	PollSerial int64
	Acks       map[string]api.CommandAck
	queue      []api.Command
	delivered  map[string]bool
	renewAsked bool
	certs      []*x509.Certificate
}

// New starts a fake server; Close stops it.
func New() *Server {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "agenttest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	caCert, _ := x509.ParseCertificate(caDER)

	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvDER, _ := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "agenttest server"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:     []string{"localhost"},
	}, caCert, &srvKey.PublicKey, caKey)

	tok := make([]byte, 16)
	rand.Read(tok)
	s := &Server{
		CAPEM:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		Token:    base64.RawURLEncoding.EncodeToString(tok),
		caKey:    caKey,
		caCert:   caCert,
		changed:  make(chan struct{}),
		serial:   100,
		devices:  make(map[string]*Device),
		lifetime: 24 * time.Hour,
		interval: 60,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+api.PathEnroll, s.enroll)
	mux.HandleFunc("POST "+api.PathRenew, s.renew)
	mux.HandleFunc("POST "+api.PathCheckin, s.checkin)
	mux.HandleFunc("GET "+api.PathCommands, s.wait)
	s.Server = httptest.NewUnstartedServer(mux)
	s.Server.EnableHTTP2 = true
	s.Server.TLS = &tls.Config{
		MinVersion: tls.VersionTLS13,
		ClientAuth: tls.RequestClientCert,
		Certificates: []tls.Certificate{{
			Certificate: [][]byte{srvDER},
			PrivateKey:  srvKey,
		}},
	}
	s.Server.StartTLS()
	return s
}

// SetCertificates sets the lifetime of the device certificates issued from
// now on, and how far into the past their validity starts.
func (s *Server) SetCertificates(lifetime, backdate time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lifetime, s.backdate = lifetime, backdate
}

// SetInterval sets the check-in interval the server asks for, in seconds.
func (s *Server) SetInterval(seconds int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.interval = seconds
}

// FailEnroll makes enrolments fail with e (nil: succeed).
func (s *Server) FailEnroll(e *api.Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failEnroll = e
}

// FailRenew makes renewals fail with e (nil: succeed).
func (s *Server) FailRenew(e *api.Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failRenew = e
}

// FailCheckin makes check-ins fail with e after authentication (nil:
// succeed). e.Code "internal" answers 500.
func (s *Server) FailCheckin(e *api.Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failCheck = e
}

// Queue queues a command for a device and wakes its long poll.
func (s *Server) Queue(deviceID string, c api.Command) {
	s.update(func() {
		if c.CreatedAt.IsZero() {
			c.CreatedAt = time.Now()
		}
		d := s.devices[deviceID]
		d.queue = append(d.queue, c)
	})
}

// Revoke marks a device revoked.
func (s *Server) Revoke(deviceID string) {
	s.update(func() { s.devices[deviceID].Revoked = true })
}

// AskRenewal makes the next check-in answer ask the device to renew.
func (s *Server) AskRenewal(deviceID string) {
	s.update(func() { s.devices[deviceID].renewAsked = true })
}

// Device returns a copy of a device's record, or nil.
func (s *Server) Device(id string) *Device {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deviceCopyLocked(id)
}

func (s *Server) deviceCopyLocked(id string) *Device {
	d, ok := s.devices[id]
	if !ok {
		return nil
	}
	c := *d
	c.Checkins = append([]api.CheckinRequest(nil), d.Checkins...)
	c.Enrolls = append([]api.EnrollRequest(nil), d.Enrolls...)
	c.Acks = make(map[string]api.CommandAck, len(d.Acks))
	for k, v := range d.Acks {
		c.Acks[k] = v
	}
	c.queue, c.delivered = nil, nil
	return &c
}

// Wait blocks until cond holds for the server's view of the device (nil
// until it exists) or the timeout passes, and returns the last view.
func (s *Server) Wait(deviceID string, timeout time.Duration, cond func(*Device) bool) (*Device, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		d := s.deviceCopyLocked(deviceID)
		ch := s.changed
		s.mu.Unlock()
		if cond(d) {
			return d, true
		}
		select {
		case <-ch:
		case <-deadline.C:
			return d, false
		}
	}
}

func (s *Server) update(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
	s.broadcastLocked()
}

func (s *Server) broadcastLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func fail(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(api.Error{Code: code, Message: msg})
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// issueLocked signs a certificate for csrPEM with CN id.
func (s *Server) issueLocked(id, csrPEM string) (*x509.CertificateRequest, []byte, *x509.Certificate, error) {
	b, _ := pem.Decode([]byte(csrPEM))
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		return nil, nil, nil, fmt.Errorf("csr is not a PEM certificate request")
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("csr: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, nil, nil, fmt.Errorf("csr signature: %v", err)
	}
	s.serial++
	now := time.Now().Add(-s.backdate)
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(s.serial),
		Subject:      pkix.Name{CommonName: id},
		NotBefore:    now,
		NotAfter:     now.Add(s.lifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, s.caCert, csr.PublicKey, s.caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	cert, _ := x509.ParseCertificate(der)
	return csr, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), cert, nil
}

func (s *Server) enroll(w http.ResponseWriter, r *http.Request) {
	var req api.EnrollRequest
	if err := api.Decode(r.Body, api.MaxEnrollBody, &req); err != nil {
		fail(w, 400, "bad_request", err.Error())
		return
	}
	if err := req.Validate(); err != nil {
		fail(w, 400, "bad_request", err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failEnroll != nil {
		fail(w, 400, s.failEnroll.Code, s.failEnroll.Message)
		return
	}
	if req.Token != s.Token {
		fail(w, 401, "invalid_token", "the enrolment token is not valid")
		return
	}
	id := "dev-" + strconv.FormatInt(s.serial+1, 10)
	if req.PreviousDeviceID != "" {
		prev, ok := s.devices[req.PreviousDeviceID]
		b, _ := pem.Decode([]byte(req.CSR))
		sig, _ := base64.StdEncoding.DecodeString(req.PreviousProof)
		if !ok || b == nil {
			fail(w, 400, "bad_request", "unknown previous device")
			return
		}
		sum := sha256.Sum256(b.Bytes)
		if pub, isEC := prev.PublicKey.(*ecdsa.PublicKey); !isEC || !ecdsa.VerifyASN1(pub, sum[:], sig) {
			fail(w, 400, "bad_request", "previous_proof does not verify")
			return
		}
		id = prev.ID
	}
	csr, certPEM, cert, err := s.issueLocked(id, req.CSR)
	if err != nil {
		fail(w, 400, "bad_request", err.Error())
		return
	}
	d := s.devices[id]
	if d == nil {
		d = &Device{ID: id, Acks: map[string]api.CommandAck{}, delivered: map[string]bool{}}
		s.devices[id] = d
	}
	d.PublicKey, d.Revoked = csr.PublicKey, false
	d.Enrolls = append(d.Enrolls, req)
	d.certs = append(d.certs, cert)
	s.broadcastLocked()
	reply(w, api.EnrollResponse{
		DeviceID: id, Certificate: string(certPEM), CACert: string(s.CAPEM),
		NotAfter: cert.NotAfter, CheckinInterval: s.interval,
	})
}

// authLocked identifies the device behind the client certificate.
func (s *Server) authLocked(w http.ResponseWriter, r *http.Request) *Device {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		fail(w, 401, "client_certificate_required", "a device certificate is required")
		return nil
	}
	leaf := r.TLS.PeerCertificates[0]
	if err := leaf.CheckSignatureFrom(s.caCert); err != nil {
		fail(w, 401, "foreign_certificate", "the certificate was not issued by this server")
		return nil
	}
	if time.Now().After(leaf.NotAfter) {
		fail(w, 401, "certificate_expired", "the device certificate has expired")
		return nil
	}
	d, ok := s.devices[leaf.Subject.CommonName]
	if !ok {
		fail(w, 401, "unknown_device", "unknown device")
		return nil
	}
	if d.Revoked {
		d.Refused++
		s.broadcastLocked()
		fail(w, 403, "device_revoked", "this device has been revoked")
		return nil
	}
	d.Serial = leaf.SerialNumber.Int64()
	d.Proto = r.Proto
	return d
}

func (s *Server) renew(w http.ResponseWriter, r *http.Request) {
	var req api.RenewRequest
	if err := api.Decode(r.Body, api.MaxEnrollBody, &req); err != nil {
		fail(w, 400, "bad_request", err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.authLocked(w, r)
	if d == nil {
		return
	}
	if s.failRenew != nil {
		fail(w, 400, s.failRenew.Code, s.failRenew.Message)
		return
	}
	csr, certPEM, cert, err := s.issueLocked(d.ID, req.CSR)
	if err != nil {
		fail(w, 400, "bad_request", err.Error())
		return
	}
	d.PublicKey = csr.PublicKey
	d.Renewals++
	d.certs = append(d.certs, cert)
	s.broadcastLocked()
	reply(w, api.EnrollResponse{
		DeviceID: d.ID, Certificate: string(certPEM), CACert: string(s.CAPEM),
		NotAfter: cert.NotAfter, CheckinInterval: s.interval,
	})
}

func (s *Server) checkin(w http.ResponseWriter, r *http.Request) {
	var req api.CheckinRequest
	if err := api.Decode(r.Body, api.MaxCheckinBody, &req); err != nil {
		fail(w, 400, "bad_request", err.Error())
		return
	}
	if err := req.Validate(); err != nil {
		fail(w, 400, "bad_request", err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.authLocked(w, r)
	if d == nil {
		return
	}
	if e := s.failCheck; e != nil {
		status := 400
		if e.Code == "internal" {
			status = 500
		}
		fail(w, status, e.Code, e.Message)
		return
	}
	d.Checkins = append(d.Checkins, req)
	for _, a := range req.Acks {
		d.Acks[a.ID] = a
	}
	resp := api.CheckinResponse{ServerTime: time.Now(), CheckinInterval: s.interval, Commands: []api.Command{}}
	kept := d.queue[:0]
	for _, c := range d.queue {
		if _, acked := d.Acks[c.ID]; acked {
			continue
		}
		kept = append(kept, c)
		d.delivered[c.ID] = true
		resp.Commands = append(resp.Commands, c)
	}
	d.queue = kept
	resp.RenewCertificate, d.renewAsked = d.renewAsked, false
	s.broadcastLocked()
	reply(w, resp)
}

func (s *Server) wait(w http.ResponseWriter, r *http.Request) {
	secs, err := strconv.Atoi(r.URL.Query().Get("wait"))
	if err != nil || secs < 0 || secs > 55 {
		fail(w, 400, "bad_request", "wait must be 0 to 55 seconds")
		return
	}
	timer := time.NewTimer(time.Duration(secs) * time.Second)
	defer timer.Stop()
	first := true
	for {
		s.mu.Lock()
		d := s.authLocked(w, r)
		if d == nil {
			s.mu.Unlock()
			return
		}
		if first {
			d.Polls++
			d.PollSerial = d.Serial
			first = false
			s.broadcastLocked()
		}
		// Like the real server, answer with every open command,
		// delivered before or not, until the device acknowledges it.
		var out []api.Command
		for _, c := range d.queue {
			d.delivered[c.ID] = true
			out = append(out, c)
		}
		ch := s.changed
		s.mu.Unlock()
		if len(out) > 0 {
			reply(w, api.CommandsWaitResponse{Commands: out})
			return
		}
		select {
		case <-ch:
		case <-timer.C:
			reply(w, api.CommandsWaitResponse{Commands: []api.Command{}})
			return
		case <-r.Context().Done():
			return
		}
	}
}
