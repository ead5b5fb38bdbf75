package agent

import (
	"context"
	"errors"
	"os"
	"sync"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent/collect"
	"github.com/bulwark-iot/bulwark/internal/agent/dnsmon"
	"github.com/bulwark-iot/bulwark/internal/agent/netmon"
)

// AuthLogOff is the CollectorsConfig.AuthLog value that turns the
// authentication collector off.
const AuthLogOff = "off"

// CollectorsConfig configures the security event collectors
// (internal/agent/collect, docs/collectors.md). The zero value runs all of
// them with their default sources and limits.
type CollectorsConfig struct {
	// NetOff turns off the network connection collector (net.connection
	// events).
	NetOff bool
	// NetInterval is how often the socket tables are polled; zero means
	// 1 s. Connections that open and close within one interval, and leave
	// no TIME_WAIT socket behind, are not seen.
	NetInterval time.Duration
	// NetLimit caps the net.connection events per minute; zero means 300.
	// Repeats of a recorded flow within the minute are counted instead.
	NetLimit int
	// DNSOff turns off the DNS query collector (dns.query events). It
	// captures UDP DNS traffic with a packet socket, which needs root or
	// CAP_NET_RAW; without it the agent logs once that DNS queries are
	// not observed.
	DNSOff bool
	// DNSLimit caps the dns.query events per minute; zero means 300.
	// Repeats of a recorded query (same process, name, type and answers)
	// within the minute are counted instead.
	DNSLimit int
	// AuthLog is where authentication events (auth.login) are read from:
	// "" picks journald if it runs (and journalctl is installed), else
	// /var/log/auth.log or /var/log/secure; "journald"; the path of a
	// syslog file; or AuthLogOff.
	AuthLog string
	// AuthLimit caps the auth.login events per minute; zero means 120.
	AuthLimit int

	// window is the rate-limit window; zero means a minute. Tests
	// shorten it.
	window time.Duration
	// dnsPorts are the DNS server ports watched; empty means 53. Tests
	// use a test server's.
	dnsPorts []uint16
}

// runCollectors starts the collectors that are on; the returned function
// stops them and waits for them, after each recorded the notes of its
// last window. The journal must be open.
func (d *daemon) runCollectors(ctx context.Context) (stop func()) {
	if d.ev == nil {
		return func() {}
	}
	cfg := d.cfg.Collectors
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	rec := collect.RecordFunc(d.recordEvent)
	if !cfg.NetOff {
		log := d.log.With("collector", "net")
		wg.Go(func() {
			err := collect.RunNet(ctx, collect.NetConfig{
				Source:   netmon.New(netmon.Config{}),
				Interval: cfg.NetInterval, Window: cfg.window, Limit: cfg.NetLimit, Logger: log,
			}, rec)
			if errors.Is(err, netmon.ErrUnsupported) {
				log.Info("network connections are not logged on this system")
			} else if err != nil {
				log.Error("network connection collector stopped", "err", err)
			}
		})
	}
	if !cfg.DNSOff {
		log := d.log.With("collector", "dns")
		wg.Go(func() {
			err := collect.RunDNS(ctx, collect.DNSConfig{
				Source: dnsmon.New(dnsmon.Config{Ports: cfg.dnsPorts}),
				Window: cfg.window, Limit: cfg.DNSLimit, Logger: log,
			}, rec)
			if errors.Is(err, dnsmon.ErrUnsupported) {
				log.Info("DNS queries are not observed on this system", "reason", err)
			} else if err != nil {
				log.Error("DNS query collector stopped", "err", err)
			}
		})
	}
	src := cfg.AuthLog
	if src == "" {
		if src = collect.DetectAuthSource(); src == "" {
			d.log.Info("no authentication log found (no journald, /var/log/auth.log or /var/log/secure): auth.login events are not collected")
		}
	}
	if src != "" && src != AuthLogOff {
		log := d.log.With("collector", "auth", "source", src)
		if src != collect.AuthJournald {
			if _, err := os.Stat(src); err != nil {
				log.Warn("the authentication log is not readable yet; waiting for it", "err", err)
			}
		}
		wg.Go(func() {
			err := collect.RunAuth(ctx, collect.AuthConfig{Source: src, Window: cfg.window, Limit: cfg.AuthLimit, Logger: log}, rec)
			if err != nil {
				log.Error("authentication collector stopped", "err", err)
			}
		})
	}
	return func() {
		cancel()
		wg.Wait()
	}
}
