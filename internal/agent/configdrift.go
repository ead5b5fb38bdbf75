package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent/state"
	"github.com/bulwark-iot/bulwark/internal/events"
)

// configSnapshotFile keeps the security-relevant settings of the last run.
const configSnapshotFile = "config-snapshot.json"

// securitySettings are the settings of c that decide what the agent sees,
// records and enforces, as text: turning a collector off, narrowing the
// integrity monitor or the journal, or lifting IoC blocking is how a local
// attacker with root would blind the fleet without stopping the agent.
func securitySettings(c Config) map[string]string {
	onOff := func(off bool) string {
		if off {
			return "off"
		}
		return "on"
	}
	orDefault := func(v string) string {
		if v == "" {
			return "default"
		}
		return v
	}
	num := func(n int64) string {
		if n == 0 {
			return "default"
		}
		return strconv.FormatInt(n, 10)
	}
	dur := func(d time.Duration) string {
		if d == 0 {
			return "default"
		}
		return d.String()
	}
	cc := c.Collectors
	return map[string]string{
		"collectors.net":          onOff(cc.NetOff),
		"collectors.net_limit":    num(int64(cc.NetLimit)),
		"collectors.net_interval": dur(cc.NetInterval),
		"collectors.auth_log":     orDefault(cc.AuthLog),
		"collectors.auth_limit":   num(int64(cc.AuthLimit)),
		"collectors.dns":          onOff(cc.DNSOff),
		"collectors.dns_limit":    num(int64(cc.DNSLimit)),
		"ioc":                     onOff(c.IoC.Off),
		"ioc.block":               onOff(c.IoC.BlockOff),
		"ioc.nft":                 orDefault(strings.Join(c.IoC.NFT, " ")),
		"events.max_bytes":        num(c.Events.MaxBytes),
		"events.clock_threshold":  dur(c.Events.ClockThreshold),
		"integrity.paths":         orDefault(strings.Join(c.IntegrityPaths, ",")),
		"managed_binaries":        orDefault(strings.Join(c.ManagedBinaries, ",")),
		"tpm":                     orDefault(c.TPM),
		"platform_root":           orDefault(c.PlatformRoot),
		"health_check":            orDefault(strings.Join(c.HealthCheck, " ")),
	}
}

// recordConfigDrift compares the security-relevant settings of this run
// with those of the last and journals each difference as a config.change
// with source local (the server did not make it), which raises the
// config.drift alert; then it keeps this run's settings. The first run
// only keeps them. The journal must be open.
func (d *daemon) recordConfigDrift() {
	cur := securitySettings(d.cfg)
	path := filepath.Join(d.dir, configSnapshotFile)
	var prev map[string]string
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		d.log.Warn("reading the previous run's settings; drift is not checked this time", "err", err)
	default:
		if err := json.Unmarshal(b, &prev); err != nil {
			d.log.Warn("the previous run's settings are unreadable; drift is not checked this time", "file", path, "err", err)
			prev = nil
		}
	}
	if prev != nil {
		keys := make([]string, 0, len(cur))
		for k := range cur {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			old, ok := prev[k]
			if !ok || old == cur[k] {
				continue // a setting new to this version is not a change
			}
			d.log.Warn("a security setting changed since the last run", "setting", k, "old", old, "new", cur[k])
			d.recordEvent(events.TypeConfigChange, events.SeverityMedium, events.ConfigChange{
				Setting: k, Old: trim(old, 1024), New: trim(cur[k], 1024), Source: "local"})
		}
	}
	out, _ := json.MarshalIndent(cur, "", "  ")
	if err := state.WriteFile(path, append(out, '\n'), 0o600); err != nil {
		d.log.Warn(fmt.Sprintf("keeping this run's settings in %s", path), "err", err)
	}
}
