package simulate

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
)

// fakeServer is a small but real implementation of the admin and device
// API calls the simulator makes: it issues enrolment tokens and device
// certificates, requires mutual TLS for check-ins, decodes every body
// strictly, queues commands and checks their acknowledgements.
type fakeServer struct {
	t          *testing.T
	ts         *httptest.Server
	roots      *x509.CertPool // verifies ts
	adminToken string
	caCert     *x509.Certificate
	caKey      *ecdsa.PrivateKey

	// Behaviour, set before use.
	rejectEnroll bool          // refuse every enrolment
	failAfter    int           // fail a device's check-ins after this many (0: never)
	checkinDelay time.Duration // added to every measured check-in

	conns    atomic.Int64 // connections accepted
	inflight atomic.Int64 // check-ins being answered
	checkins atomic.Int64 // check-ins answered 200
	acks     atomic.Int64 // command acknowledgements matched

	mu      sync.Mutex
	tokens  map[string]int         // enrolment token → uses left
	devices map[string]*fakeDevice // by device ID
	hosts   map[string]bool        // hostnames enrolled
	group   map[string]string      // token → group
}

type fakeDevice struct {
	checkins int
	pending  map[string]bool // command IDs sent, not yet acknowledged
}

func newFakeServer(t *testing.T, configure func(*fakeServer)) *fakeServer {
	t.Helper()
	f := &fakeServer{
		t:          t,
		adminToken: "bwk_admin_" + randHex(8),
		tokens:     map[string]int{},
		devices:    map[string]*fakeDevice{},
		hosts:      map[string]bool{},
		group:      map[string]string{},
	}
	if configure != nil {
		configure(f)
	}
	var err error
	f.caKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "fake device CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}, &x509.Certificate{Subject: pkix.Name{CommonName: "fake device CA"}}, &f.caKey.PublicKey, f.caKey)
	if err != nil {
		t.Fatal(err)
	}
	if f.caCert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(f.caCert)

	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/enroll-tokens", f.createToken)
	mux.HandleFunc("POST "+api.PathEnroll, f.enroll)
	mux.HandleFunc("POST "+api.PathCheckin, f.checkin)
	f.ts = httptest.NewUnstartedServer(mux)
	f.ts.EnableHTTP2 = true
	f.ts.TLS = &tls.Config{MinVersion: tls.VersionTLS13, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: clientCAs}
	f.ts.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes cut short by closing
	f.ts.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			f.conns.Add(1)
		}
	}
	f.ts.StartTLS()
	t.Cleanup(f.ts.Close)
	f.roots = x509.NewCertPool()
	f.roots.AddCert(f.ts.Certificate())
	return f
}

func (f *fakeServer) config(devices int, interval, duration time.Duration) Config {
	return Config{
		Server: f.ts.URL, Token: f.adminToken, Roots: f.roots,
		Devices: devices, Interval: interval, Duration: duration, EnrollConcurrency: 4, Timeout: 5 * time.Second,
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, api.Error{Code: code, Message: msg})
}

func (f *fakeServer) createToken(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+f.adminToken {
		writeError(w, http.StatusUnauthorized, "unauthorized", "a valid API token is required")
		return
	}
	var req api.EnrollTokenCreate
	if err := api.Decode(r.Body, api.MaxAdminBody, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	ttl, err := time.ParseDuration(req.TTL)
	if err != nil || req.Uses < 1 || !strings.HasPrefix(req.Name, "simulate-") {
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("bad token request %+v", req))
		return
	}
	tok := "bwk_enroll_" + randHex(16)
	f.mu.Lock()
	f.tokens[tok] = req.Uses
	f.group[tok] = req.Group
	f.mu.Unlock()
	writeJSON(w, http.StatusCreated, api.EnrollToken{
		ID: randHex(8), Name: req.Name, Token: tok, Group: req.Group, MaxUses: req.Uses,
		ExpiresAt: time.Now().Add(ttl), CreatedAt: time.Now(), CreatedBy: "token:test",
	})
}

func (f *fakeServer) enroll(w http.ResponseWriter, r *http.Request) {
	var req api.EnrollRequest
	if err := api.Decode(r.Body, api.MaxEnrollBody, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if f.rejectEnroll {
		writeError(w, http.StatusForbidden, "enrollment_closed", "enrolment is closed")
		return
	}
	if req.Inventory == nil || !strings.HasPrefix(req.Inventory.Hostname, "sim-") || req.KeyAssurance != "software" {
		writeError(w, http.StatusBadRequest, "bad_request", "unexpected enrolment request")
		return
	}
	b, _ := pem.Decode([]byte(req.CSR))
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		writeError(w, http.StatusBadRequest, "bad_csr", "no PEM certificate request")
		return
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err == nil {
		err = csr.CheckSignature()
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_csr", err.Error())
		return
	}

	f.mu.Lock()
	left, ok := f.tokens[req.Token]
	if ok && left > 0 {
		f.tokens[req.Token]--
	}
	// Each run enrols its own sim-00001…: names repeat across tokens only.
	host := req.Token + " " + req.Inventory.Hostname
	dup := f.hosts[host]
	f.hosts[host] = true
	id := "dev_" + randHex(8)
	f.devices[id] = &fakeDevice{pending: map[string]bool{}}
	group := f.group[req.Token]
	f.mu.Unlock()
	if !ok || left == 0 {
		writeError(w, http.StatusUnauthorized, "invalid_token", "enrolment token invalid, expired or used up")
		return
	}
	if dup {
		writeError(w, http.StatusConflict, "duplicate", "hostname enrolled twice: "+req.Inventory.Hostname)
		return
	}

	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: id},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, f.caCert, csr.PublicKey, f.caKey)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", "signing failed")
		return
	}
	writeJSON(w, http.StatusOK, api.EnrollResponse{
		DeviceID:        id,
		Certificate:     string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		CACert:          string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.caCert.Raw})),
		NotAfter:        time.Now().Add(time.Hour),
		Group:           group,
		CheckinInterval: 60,
	})
}

func (f *fakeServer) checkin(w http.ResponseWriter, r *http.Request) {
	f.inflight.Add(1)
	defer f.inflight.Add(-1)
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		writeError(w, http.StatusUnauthorized, "unauthenticated", "a device certificate is required")
		return
	}
	var req api.CheckinRequest
	if err := api.Decode(r.Body, api.MaxCheckinBody, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if !strings.HasPrefix(req.Inventory.Hostname, "sim-") || req.Inventory.UptimeSeconds <= 0 || len(req.Inventory.Interfaces) == 0 {
		writeError(w, http.StatusBadRequest, "bad_request", "implausible inventory")
		return
	}
	id := r.TLS.PeerCertificates[0].Subject.CommonName

	f.mu.Lock()
	d := f.devices[id]
	if d == nil {
		f.mu.Unlock()
		writeError(w, http.StatusUnauthorized, "unknown_device", "unknown device")
		return
	}
	d.checkins++
	n := d.checkins
	var matched int64
	for _, a := range req.Acks {
		if d.pending[a.ID] && a.Status == "done" {
			delete(d.pending, a.ID)
			matched++
		}
	}
	var cmds []api.Command
	if n%2 == 1 {
		c := api.Command{ID: "cmd_" + randHex(6), Kind: "ping", CreatedAt: time.Now()}
		d.pending[c.ID] = true
		cmds = append(cmds, c)
	}
	f.mu.Unlock()
	f.acks.Add(matched)

	if f.failAfter > 0 && n > f.failAfter {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "server is in maintenance")
		return
	}
	if n > 1 && f.checkinDelay > 0 {
		time.Sleep(f.checkinDelay)
	}
	f.checkins.Add(1)
	writeJSON(w, http.StatusOK, api.CheckinResponse{ServerTime: time.Now(), CheckinInterval: 60, Commands: cmds})
}
