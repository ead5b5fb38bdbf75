package simulate

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/attest/softtpm"
	"github.com/bulwark-iot/bulwark/internal/deviceclient"
)

// device is one simulated device: its identity, its connection and what it
// reports.
type device struct {
	index  int
	client *deviceclient.Client
	inv    api.Inventory
	health api.Health
	bootAt time.Time // uptime is measured from here
	// tpm is the device's software TPM, with Config.Attest; attBusy is
	// held while an attestation the device asked for is in flight.
	tpm     *softtpm.TPM
	attBusy atomic.Bool

	// busy is held by the goroutine running a check-in, which alone may
	// touch the fields below it.
	busy          atomic.Bool
	acks          []api.CommandAck
	configVersion int64

	// upd is the device's update state, shared by its check-ins and the
	// goroutine simulating an update.
	upd struct {
		sync.Mutex
		working   string          // deployment being worked on
		finished  map[string]bool // deployments done with, whatever the outcome
		installed string          // target of the last successful update
	}
}

// claimUpdate reports whether the device starts working on deployment id:
// it is not working on it already and has not finished it.
func (d *device) claimUpdate(id string) bool {
	d.upd.Lock()
	defer d.upd.Unlock()
	if d.upd.working == id || d.upd.finished[id] {
		return false
	}
	d.upd.working = id
	return true
}

// endUpdate ends work on deployment id: final means the server recorded a
// final status, so the device does not take the assignment again;
// installed, if not empty, is the target now installed.
func (d *device) endUpdate(id string, final bool, installed string) {
	d.upd.Lock()
	defer d.upd.Unlock()
	if d.upd.working == id {
		d.upd.working = ""
	}
	if final {
		if d.upd.finished == nil {
			d.upd.finished = map[string]bool{}
		}
		d.upd.finished[id] = true
	}
	if installed != "" {
		d.upd.installed = installed
	}
}

// currentHealth is the health the device reports: with a check naming
// the installed update, once it has one.
func (d *device) currentHealth() api.Health {
	d.upd.Lock()
	installed := d.upd.installed
	d.upd.Unlock()
	if installed == "" {
		return d.health
	}
	h := d.health
	h.Checks = append(append([]api.HealthCheck(nil), h.Checks...), api.HealthCheck{Name: "update", Status: api.HealthHealthy, Detail: "installed " + installed})
	return h
}

// hostname returns the simulated host name of device i (zero-based):
// sim-00001 for the first.
func hostname(i int) string { return fmt.Sprintf("sim-%05d", i+1) }

// platforms are the kinds of device the simulated fleet is made of.
var platforms = []struct{ osVersion, kernel, arch string }{
	{"Yocto Project 4.0.18 (kirkstone)", "5.15.148-yocto-standard", "arm64"},
	{"Yocto Project 5.0.4 (scarthgap)", "6.6.50-yocto-standard", "arm64"},
	{"Debian GNU/Linux 12 (bookworm)", "6.1.0-27-arm64", "arm64"},
	{"Debian GNU/Linux 12 (bookworm)", "6.1.0-27-amd64", "amd64"},
	{"Buildroot 2024.02.6", "6.6.30", "arm"},
	{"OpenWrt 23.05.4", "5.15.162", "mips"},
	{"Ubuntu Core 22", "5.15.0-1060-raspi", "arm64"},
}

var agentVersions = []string{"1.0.0", "1.0.1", "1.0.1", "1.1.0", "1.1.0", "1.1.0"}

// newDevice builds the inventory and health of device i, varied across the
// fleet but the same from one run to the next.
func newDevice(i int, now time.Time) *device {
	rng := rand.New(rand.NewPCG(uint64(i), 0x62756c7761726b)) // "bulwark"
	p := platforms[rng.IntN(len(platforms))]
	d := &device{
		index:  i,
		bootAt: now.Add(-time.Duration(300+rng.Int64N(90*24*3600)) * time.Second),
		inv: api.Inventory{
			Hostname:     hostname(i),
			OS:           "linux",
			OSVersion:    p.osVersion,
			Kernel:       p.kernel,
			Arch:         p.arch,
			AgentVersion: agentVersions[rng.IntN(len(agentVersions))],
		},
		health: api.Health{Status: api.HealthHealthy, Checks: []api.HealthCheck{
			{Name: "disk", Status: api.HealthHealthy, Detail: fmt.Sprintf("data %d%% used", 10+rng.IntN(70))},
			{Name: "clock", Status: api.HealthHealthy, Detail: "synchronised"},
		}},
	}
	if rng.IntN(50) == 0 {
		d.health.Status = api.HealthDegraded
		d.health.Checks[0] = api.HealthCheck{Name: "disk", Status: api.HealthDegraded, Detail: fmt.Sprintf("data %d%% used", 91+rng.IntN(9))}
	}

	// Addresses and MACs derive from the index, so they are unique.
	id := [4]byte{byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
	mac := func(prefix byte) string {
		return fmt.Sprintf("%02x:b7:%02x:%02x:%02x:%02x", prefix, id[0], id[1], id[2], id[3])
	}
	v4 := netip.AddrFrom4([4]byte{10, id[1], id[2], id[3]})
	ll := netip.AddrFrom16([16]byte{0: 0xfe, 1: 0x80, 8: 0x02, 9: 0xb7, 10: id[0], 11: 0xff, 12: 0xfe, 13: id[1], 14: id[2], 15: id[3]})
	d.inv.Interfaces = []api.Interface{{
		Name:  "eth0",
		MAC:   mac(0x02),
		Addrs: []string{netip.PrefixFrom(v4, 8).String(), netip.PrefixFrom(ll, 64).String()},
		Up:    true,
	}}
	if rng.IntN(3) == 0 {
		wlan := api.Interface{Name: "wlan0", MAC: mac(0x06), Up: rng.IntN(2) == 0}
		if wlan.Up {
			wlan.Addrs = []string{fmt.Sprintf("192.168.%d.%d/24", rng.IntN(256), 2+rng.IntN(250))}
		}
		d.inv.Interfaces = append(d.inv.Interfaces, wlan)
	}
	if rng.IntN(10) == 0 {
		d.inv.Interfaces = append(d.inv.Interfaces, api.Interface{
			Name: "wwan0", Up: true,
			Addrs: []string{fmt.Sprintf("100.%d.%d.%d/30", 64+rng.IntN(64), rng.IntN(256), 4*rng.IntN(64)+1)},
		})
	}
	return d
}

// inventory is the device's inventory as of now.
func (d *device) inventory(now time.Time) api.Inventory {
	inv := d.inv
	inv.UptimeSeconds = int64(now.Sub(d.bootAt) / time.Second)
	return inv
}

// checkin reports to the server, acknowledges the commands received last
// time and, as a real agent would, "runs" the ones received now. It
// returns the answer's update assignment and attestation nonce, if any.
// The caller holds d.busy, or is the goroutine that enrolled d.
func (d *device) checkin(ctx context.Context) (*api.UpdateAssignment, []byte, error) {
	resp, err := d.client.Checkin(ctx, &api.CheckinRequest{
		Inventory:     d.inventory(time.Now()),
		Health:        d.currentHealth(),
		Acks:          d.acks,
		ConfigVersion: d.configVersion,
	})
	if err != nil {
		return nil, nil, err
	}
	d.acks = d.acks[:0]
	for _, c := range resp.Commands {
		if len(d.acks) == api.MaxAcks {
			break
		}
		d.acks = append(d.acks, api.CommandAck{ID: c.ID, Status: "done", Detail: "simulated"})
	}
	d.configVersion = resp.DesiredConfigVersion
	return resp.Update, resp.AttestNonce, nil
}

// tlsCertificate pairs the certificate chain of an enrolment answer with
// the device key.
func tlsCertificate(chainPEM string, key *ecdsa.PrivateKey) (*tls.Certificate, error) {
	cert := &tls.Certificate{PrivateKey: key}
	rest := []byte(chainPEM)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			cert.Certificate = append(cert.Certificate, b.Bytes)
		}
	}
	if len(cert.Certificate) == 0 {
		return nil, errors.New("enroll: the answer holds no PEM certificate")
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("enroll: parsing the device certificate: %w", err)
	}
	if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(key.Public()) {
		return nil, errors.New("enroll: the device certificate is not for the device key")
	}
	cert.Leaf = leaf
	return cert, nil
}
