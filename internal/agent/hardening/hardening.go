// Package hardening reports the device's exploit mitigations (Code of
// Practice 4.4): kernel and platform settings read from /proc, /sys and the
// UEFI variables, and the ELF hardening of the agent's own binary and of
// the binaries it manages. docs/exploit-mitigations.md documents every
// fact; a test keeps the two in step.
//
// A fact that cannot be read (missing file, permission, a container that
// hides /sys, an architecture without the feature flag) is reported as
// "unknown", never guessed as "on" or "off".
//
// Collect and Binary only read files and are safe for concurrent use.
package hardening

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/bulwark-iot/bulwark/internal/api"
)

// Fact and binary statuses.
const (
	On      = "on"
	Off     = "off"
	Unknown = "unknown"
	// Full and Partial are RELRO levels (BinaryReport.RELRO).
	Full    = "full"
	Partial = "partial"
)

// Options configure Collect. The zero value reads the real system and
// checks the agent's own binary.
type Options struct {
	// Root is prefixed to every /proc, /sys and efivars path; empty means
	// "/". Tests point it at a fake tree.
	Root string
	// Binaries are further ELF files to check (the managed binaries), by
	// their real path; Root does not apply to them.
	Binaries []string
	// NoSelf leaves the agent's own binary (os.Executable) out.
	NoSelf bool
}

// Paths of the facts, relative to Options.Root.
const (
	pathASLR             = "proc/sys/kernel/randomize_va_space"
	pathKptrRestrict     = "proc/sys/kernel/kptr_restrict"
	pathDmesgRestrict    = "proc/sys/kernel/dmesg_restrict"
	pathLockdown         = "sys/kernel/security/lockdown"
	pathSigEnforce       = "sys/module/module/parameters/sig_enforce"
	pathPtraceScope      = "proc/sys/kernel/yama/ptrace_scope"
	pathUnprivBPF        = "proc/sys/kernel/unprivileged_bpf_disabled"
	pathCPUInfo          = "proc/cpuinfo"
	pathSecureBoot       = "sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
	pathPerfParanoid     = "proc/sys/kernel/perf_event_paranoid"
	pathKexecDisabled    = "proc/sys/kernel/kexec_load_disabled"
	pathProtectSymlinks  = "proc/sys/fs/protected_symlinks"
	pathProtectHardlinks = "proc/sys/fs/protected_hardlinks"
)

// Fact names, as reported in HardeningFact.Name and documented in
// docs/exploit-mitigations.md.
const (
	FactASLR             = "aslr"
	FactKptrRestrict     = "kptr_restrict"
	FactDmesgRestrict    = "dmesg_restrict"
	FactLockdown         = "kernel_lockdown"
	FactModuleSig        = "module_sig_enforce"
	FactPtraceScope      = "yama_ptrace_scope"
	FactUnprivBPF        = "unprivileged_bpf_disabled"
	FactNX               = "cpu_nx"
	FactSMEP             = "cpu_smep"
	FactSMAP             = "cpu_smap"
	FactSecureBoot       = "secure_boot"
	FactPerfParanoid     = "perf_event_paranoid"
	FactKexecDisabled    = "kexec_load_disabled"
	FactProtectSymlinks  = "protected_symlinks"
	FactProtectHardlinks = "protected_hardlinks"
)

// Facts lists the fact names in the order Collect reports them.
var Facts = []string{
	FactASLR, FactKptrRestrict, FactDmesgRestrict, FactLockdown, FactModuleSig,
	FactPtraceScope, FactUnprivBPF, FactNX, FactSMEP, FactSMAP, FactSecureBoot,
	FactPerfParanoid, FactKexecDisabled, FactProtectSymlinks, FactProtectHardlinks,
}

// Collect reads every fact and checks the binaries.
func Collect(opts Options) api.HardeningReport {
	return collect(opts, os.ReadFile)
}

// collect is Collect reading files with readFile.
func collect(opts Options, readFile func(string) ([]byte, error)) api.HardeningReport {
	r := reader{root: opts.Root, readFile: readFile}
	if r.root == "" {
		r.root = "/"
	}
	lockdown := r.lockdown()
	facts := []api.HardeningFact{
		r.intFact(FactASLR, pathASLR, "2", func(v int) bool { return v == 2 }),
		r.intFact(FactKptrRestrict, pathKptrRestrict, ">= 1", func(v int) bool { return v >= 1 }),
		r.intFact(FactDmesgRestrict, pathDmesgRestrict, "1", func(v int) bool { return v == 1 }),
		lockdown,
		r.moduleSig(lockdown),
		r.intFact(FactPtraceScope, pathPtraceScope, ">= 1", func(v int) bool { return v >= 1 }),
		r.intFact(FactUnprivBPF, pathUnprivBPF, ">= 1", func(v int) bool { return v >= 1 }),
	}
	facts = append(facts, r.cpuFlags()...)
	facts = append(facts,
		r.secureBoot(),
		r.intFact(FactPerfParanoid, pathPerfParanoid, ">= 2", func(v int) bool { return v >= 2 }),
		r.intFact(FactKexecDisabled, pathKexecDisabled, "1", func(v int) bool { return v == 1 }),
		r.intFact(FactProtectSymlinks, pathProtectSymlinks, "1", func(v int) bool { return v == 1 }),
		r.intFact(FactProtectHardlinks, pathProtectHardlinks, "1", func(v int) bool { return v == 1 }),
	)

	rep := api.HardeningReport{Facts: facts}
	var bins []string
	if !opts.NoSelf {
		if self, err := os.Executable(); err == nil {
			bins = append(bins, self)
		} else {
			rep.Binaries = append(rep.Binaries, api.BinaryReport{Path: "(agent)", PIE: Unknown, RELRO: Unknown, NXStack: Unknown,
				Detail: "locating the agent's binary: " + err.Error()})
		}
	}
	for _, b := range append(bins, opts.Binaries...) {
		rep.Binaries = append(rep.Binaries, Binary(b))
	}
	return rep
}

// SecureBoot is the UEFI Secure Boot state as attestation evidence names
// it (api.Evidence.SecureBoot): "enabled", "disabled" or "unknown". root
// is as in Options.
func SecureBoot(root string) string {
	if root == "" {
		root = "/"
	}
	switch (reader{root: root, readFile: os.ReadFile}).secureBoot().Status {
	case On:
		return "enabled"
	case Off:
		return "disabled"
	}
	return Unknown
}

// reader reads facts under root.
type reader struct {
	root     string
	readFile func(string) ([]byte, error)
}

func (r reader) read(rel string) ([]byte, error) {
	return r.readFile(filepath.Join(r.root, filepath.FromSlash(rel)))
}

// unknown is a fact that could not be read.
func unknown(name, rel, expected string, err error) api.HardeningFact {
	f := api.HardeningFact{Name: name, Status: Unknown, Expected: expected}
	if err != nil {
		f.Detail = readProblem(rel, err)
	}
	return f
}

func readProblem(rel string, err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "/" + rel + " does not exist (not supported by this kernel, or hidden by a container)"
	case errors.Is(err, fs.ErrPermission):
		return "/" + rel + " is not readable by the agent"
	}
	return "reading /" + rel + ": " + err.Error()
}

// intFact reads an integer sysctl; ok says whether its value is the
// hardened one.
func (r reader) intFact(name, rel, expected string, ok func(int) bool) api.HardeningFact {
	b, err := r.read(rel)
	if err != nil {
		return unknown(name, rel, expected, err)
	}
	s := strings.TrimSpace(string(b))
	v, err := strconv.Atoi(s)
	if err != nil {
		f := unknown(name, rel, expected, nil)
		f.Value = truncate(s)
		f.Detail = "/" + rel + " does not hold an integer"
		return f
	}
	f := api.HardeningFact{Name: name, Status: Off, Value: s, Expected: expected, Detail: "/" + rel}
	if ok(v) {
		f.Status = On
	}
	return f
}

// lockdown reads the kernel lockdown mode: the selected one is in
// brackets, as in "none [integrity] confidentiality".
func (r reader) lockdown() api.HardeningFact {
	const expected = "integrity or confidentiality"
	b, err := r.read(pathLockdown)
	if err != nil {
		return unknown(FactLockdown, pathLockdown, expected, err)
	}
	s := strings.TrimSpace(string(b))
	_, rest, ok1 := strings.Cut(s, "[")
	mode, _, ok2 := strings.Cut(rest, "]")
	if !ok1 || !ok2 {
		f := unknown(FactLockdown, pathLockdown, expected, nil)
		f.Value, f.Detail = truncate(s), "/"+pathLockdown+" names no selected mode"
		return f
	}
	f := api.HardeningFact{Name: FactLockdown, Status: Off, Value: mode, Expected: expected, Detail: "/" + pathLockdown}
	switch mode {
	case "integrity", "confidentiality":
		f.Status = On
	case "none":
	default:
		f.Status, f.Detail = Unknown, "/"+pathLockdown+" selects an unknown mode"
	}
	return f
}

// moduleSig is on when the kernel refuses unsigned modules: sig_enforce is
// Y, or lockdown is on (which enforces module signatures whatever
// sig_enforce says).
func (r reader) moduleSig(lockdown api.HardeningFact) api.HardeningFact {
	const expected = "Y (or kernel lockdown)"
	f := api.HardeningFact{Name: FactModuleSig, Expected: expected}
	b, err := r.read(pathSigEnforce)
	v := strings.TrimSpace(string(b))
	switch {
	case err == nil && v == "Y":
		f.Status, f.Value, f.Detail = On, v, "/"+pathSigEnforce
	case lockdown.Status == On:
		f.Status, f.Value, f.Detail = On, "lockdown="+lockdown.Value, "kernel lockdown enforces module signatures"
		if err == nil {
			f.Value = v + ", " + f.Value
		}
	case err != nil:
		f = unknown(FactModuleSig, pathSigEnforce, expected, err)
	case v != "N":
		f.Status, f.Value, f.Detail = Unknown, truncate(v), "/"+pathSigEnforce+" holds neither Y nor N"
	case lockdown.Status == Off:
		f.Status, f.Value, f.Detail = Off, v, "/"+pathSigEnforce+"; kernel lockdown is none"
	default:
		// sig_enforce is N but lockdown, which would enforce signatures
		// anyway, cannot be read.
		f.Status, f.Value, f.Detail = Unknown, v, "/"+pathSigEnforce+" is N and the kernel lockdown mode cannot be read"
	}
	return f
}

// cpuFlags reads NX, SMEP and SMAP from the "flags" line of /proc/cpuinfo,
// which only x86 kernels print; elsewhere the facts are unknown.
func (r reader) cpuFlags() []api.HardeningFact {
	names := []struct{ fact, flag string }{{FactNX, "nx"}, {FactSMEP, "smep"}, {FactSMAP, "smap"}}
	var out []api.HardeningFact
	b, err := r.read(pathCPUInfo)
	var flags []string
	found := false
	if err == nil {
		for line := range bytes.Lines(b) {
			k, v, ok := strings.Cut(string(line), ":")
			if ok && strings.TrimSpace(k) == "flags" {
				flags, found = strings.Fields(v), true
				break
			}
		}
	}
	for _, n := range names {
		f := api.HardeningFact{Name: n.fact, Expected: "flag " + n.flag}
		switch {
		case err != nil:
			f = unknown(n.fact, pathCPUInfo, f.Expected, err)
		case !found:
			f.Status, f.Detail = Unknown, "/"+pathCPUInfo+" has no x86 flags line (other architectures do not report "+n.flag+" there)"
		case containsWord(flags, n.flag):
			f.Status, f.Value, f.Detail = On, n.flag, "/"+pathCPUInfo+" flags"
		default:
			f.Status, f.Detail = Off, "/"+pathCPUInfo+" flags lack "+n.flag
		}
		out = append(out, f)
	}
	return out
}

func containsWord(words []string, w string) bool {
	for _, x := range words {
		if x == w {
			return true
		}
	}
	return false
}

// secureBoot reads the UEFI SecureBoot variable: four attribute bytes,
// then one byte, 1 when Secure Boot is enabled.
func (r reader) secureBoot() api.HardeningFact {
	const expected = "1"
	b, err := r.read(pathSecureBoot)
	if err != nil {
		f := unknown(FactSecureBoot, pathSecureBoot, expected, err)
		if errors.Is(err, fs.ErrNotExist) {
			if _, err := os.Stat(filepath.Join(r.root, "sys/firmware/efi")); err != nil {
				f.Detail = "not booted through UEFI (no /sys/firmware/efi), or efivars hidden"
			}
		}
		return f
	}
	if len(b) < 5 {
		return api.HardeningFact{Name: FactSecureBoot, Status: Unknown, Expected: expected,
			Detail: fmt.Sprintf("the SecureBoot variable has %d bytes, want 4 attribute bytes and a value", len(b))}
	}
	v := b[4]
	f := api.HardeningFact{Name: FactSecureBoot, Value: strconv.Itoa(int(v)), Expected: expected, Detail: "UEFI variable SecureBoot"}
	switch v {
	case 1:
		f.Status = On
	case 0:
		f.Status = Off
	default:
		f.Status = Unknown
		f.Detail = "UEFI variable SecureBoot holds neither 0 nor 1"
	}
	return f
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64]
	}
	return s
}
