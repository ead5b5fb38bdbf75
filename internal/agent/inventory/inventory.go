// Package inventory collects what the agent reports about its device:
// host name, operating system, kernel, architecture, agent version, network
// interfaces and uptime. Collect is safe for concurrent use.
package inventory

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/bulwark-iot/bulwark/internal/api"
)

// Source says where Collect reads from; the zero value reads this host.
type Source struct {
	// OSRelease is the os-release file; empty means /etc/os-release,
	// falling back to /usr/lib/os-release.
	OSRelease string
	// Uptime is the uptime file; empty means /proc/uptime.
	Uptime string
}

// Collect describes this host. Fields that cannot be read are left empty
// (Hostname becomes "unknown"); every string is cut to api.MaxStringLen and
// cleaned of control characters so that the result passes Validate.
func Collect(agentVersion string) api.Inventory {
	return Source{}.Collect(agentVersion)
}

// Collect describes the host as seen through s.
func (s Source) Collect(agentVersion string) api.Inventory {
	inv := api.Inventory{
		Kernel:       kernelRelease(),
		Arch:         runtime.GOARCH,
		AgentVersion: agentVersion,
	}
	if h, err := os.Hostname(); err == nil {
		inv.Hostname = h
	}
	if inv.Hostname == "" {
		inv.Hostname = "unknown"
	}
	inv.OS, inv.OSVersion = s.osRelease()
	if inv.OS == "" {
		inv.OS = runtime.GOOS
	}
	inv.UptimeSeconds = s.uptime()
	inv.Interfaces = interfaces()

	for _, p := range []*string{&inv.Hostname, &inv.OS, &inv.OSVersion, &inv.Kernel, &inv.Arch, &inv.AgentVersion} {
		*p = clean(*p)
	}
	return inv
}

func (s Source) osRelease() (name, version string) {
	paths := []string{"/etc/os-release", "/usr/lib/os-release"}
	if s.OSRelease != "" {
		paths = []string{s.OSRelease}
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		kv := ParseOSRelease(data)
		name = kv["NAME"]
		if name == "" {
			name = kv["ID"]
		}
		version = kv["VERSION_ID"]
		if version == "" {
			version = kv["VERSION"]
		}
		return name, version
	}
	return "", ""
}

// ParseOSRelease parses os-release(5) content: KEY=value lines, values
// optionally quoted, comments and blank lines ignored.
func ParseOSRelease(data []byte) map[string]string {
	kv := make(map[string]string)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
			if strings.ContainsRune(v, '\\') {
				v = strings.NewReplacer(`\"`, `"`, `\\`, `\`, `\$`, `$`, "\\`", "`").Replace(v)
			}
		}
		kv[strings.TrimSpace(k)] = v
	}
	return kv
}

func (s Source) uptime() int64 {
	p := s.Uptime
	if p == "" {
		p = "/proc/uptime"
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 0
	}
	up, err := strconv.ParseFloat(f[0], 64)
	if err != nil || up < 0 {
		return 0
	}
	return int64(up)
}

func interfaces() []api.Interface {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil
	}
	var out []api.Interface
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		if len(out) == api.MaxInterfaces {
			break
		}
		x := api.Interface{
			Name: clean(ifc.Name),
			MAC:  ifc.HardwareAddr.String(),
			Up:   ifc.Flags&net.FlagUp != 0,
		}
		if addrs, err := ifc.Addrs(); err == nil {
			for _, a := range addrs {
				if len(x.Addrs) == 64 {
					break
				}
				x.Addrs = append(x.Addrs, a.String())
			}
		}
		out = append(out, x)
	}
	return out
}

// clean cuts s to api.MaxStringLen bytes on a rune boundary and drops
// control characters.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, ""))
	if len(s) > api.MaxStringLen {
		cut := api.MaxStringLen
		for cut > 0 && !utf8RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
