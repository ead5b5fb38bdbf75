package hardening

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/bulwark-iot/bulwark/internal/api"
)

func factsByName(t *testing.T, rep api.HardeningReport) map[string]api.HardeningFact {
	t.Helper()
	m := map[string]api.HardeningFact{}
	for _, f := range rep.Facts {
		if _, dup := m[f.Name]; dup {
			t.Fatalf("fact %s reported twice", f.Name)
		}
		m[f.Name] = f
	}
	return m
}

func TestCollectTrees(t *testing.T) {
	for _, tc := range []struct {
		tree string
		want func(name string) string
	}{
		{"hardened", func(string) string { return On }},
		{"weak", func(string) string { return Off }},
		// Inside a container on an ARM board only cpuinfo and ASLR are
		// visible: everything else is unknown, never on or off.
		{"container-arm64", func(n string) string {
			if n == FactASLR {
				return On
			}
			return Unknown
		}},
	} {
		t.Run(tc.tree, func(t *testing.T) {
			rep := Collect(Options{Root: filepath.Join("testdata", tc.tree), NoSelf: true})
			if len(rep.Binaries) != 0 {
				t.Errorf("binaries checked with NoSelf: %+v", rep.Binaries)
			}
			var names []string
			for _, f := range rep.Facts {
				names = append(names, f.Name)
				if want := tc.want(f.Name); f.Status != want {
					t.Errorf("%s = %s (%q, %s), want %s", f.Name, f.Status, f.Value, f.Detail, want)
				}
				if f.Expected == "" {
					t.Errorf("%s has no expected value", f.Name)
				}
				if f.Status == Unknown && f.Detail == "" {
					t.Errorf("%s is unknown without saying why", f.Name)
				}
			}
			if len(names) != len(Facts) {
				t.Fatalf("facts %v, want %v", names, Facts)
			}
			for i := range names {
				if names[i] != Facts[i] {
					t.Fatalf("facts %v, want %v", names, Facts)
				}
			}
		})
	}
}

// TestFactStates changes one file of the hardened tree at a time and
// checks the fact it feeds.
func TestFactStates(t *testing.T) {
	del := "\x00delete"
	sb := "sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
	for _, tc := range []struct {
		name  string
		files map[string]string
		fact  string
		want  string
		value string
	}{
		{"aslr partial", map[string]string{pathASLR: "1\n"}, FactASLR, Off, "1"},
		{"aslr garbage", map[string]string{pathASLR: "two\n"}, FactASLR, Unknown, "two"},
		{"aslr missing", map[string]string{pathASLR: del}, FactASLR, Unknown, ""},
		{"kptr 2", map[string]string{pathKptrRestrict: "2\n"}, FactKptrRestrict, On, "2"},
		{"kptr 0", map[string]string{pathKptrRestrict: "0\n"}, FactKptrRestrict, Off, "0"},
		{"dmesg 0", map[string]string{pathDmesgRestrict: "0\n"}, FactDmesgRestrict, Off, "0"},
		{"dmesg empty", map[string]string{pathDmesgRestrict: ""}, FactDmesgRestrict, Unknown, ""},
		{"lockdown confidentiality", map[string]string{pathLockdown: "none integrity [confidentiality]\n"}, FactLockdown, On, "confidentiality"},
		{"lockdown none", map[string]string{pathLockdown: "[none] integrity confidentiality\n"}, FactLockdown, Off, "none"},
		{"lockdown unselected", map[string]string{pathLockdown: "none integrity\n"}, FactLockdown, Unknown, "none integrity"},
		{"lockdown missing", map[string]string{pathLockdown: del}, FactLockdown, Unknown, ""},
		{"modsig lockdown only", map[string]string{pathSigEnforce: "N\n"}, FactModuleSig, On, "N, lockdown=integrity"},
		{"modsig sig_enforce missing, lockdown", map[string]string{pathSigEnforce: del}, FactModuleSig, On, "lockdown=integrity"},
		{"modsig off", map[string]string{pathSigEnforce: "N\n", pathLockdown: "[none] integrity\n"}, FactModuleSig, Off, "N"},
		{"modsig Y without lockdown", map[string]string{pathLockdown: del}, FactModuleSig, On, "Y"},
		{"modsig N, lockdown unreadable", map[string]string{pathSigEnforce: "N\n", pathLockdown: del}, FactModuleSig, Unknown, "N"},
		{"modsig all missing", map[string]string{pathSigEnforce: del, pathLockdown: del}, FactModuleSig, Unknown, ""},
		{"modsig missing, lockdown none", map[string]string{pathSigEnforce: del, pathLockdown: "[none]\n"}, FactModuleSig, Unknown, ""},
		{"ptrace 3", map[string]string{pathPtraceScope: "3\n"}, FactPtraceScope, On, "3"},
		{"ptrace 0", map[string]string{pathPtraceScope: "0\n"}, FactPtraceScope, Off, "0"},
		{"no yama", map[string]string{pathPtraceScope: del}, FactPtraceScope, Unknown, ""},
		{"bpf 1", map[string]string{pathUnprivBPF: "1\n"}, FactUnprivBPF, On, "1"},
		{"bpf 0", map[string]string{pathUnprivBPF: "0\n"}, FactUnprivBPF, Off, "0"},
		{"no smap", map[string]string{pathCPUInfo: "flags\t: fpu nx smep\n"}, FactSMAP, Off, ""},
		{"nx with no smap", map[string]string{pathCPUInfo: "flags\t: fpu nx smep\n"}, FactNX, On, "nx"},
		{"smap substring is not smap", map[string]string{pathCPUInfo: "flags\t: nx smep smapx\n"}, FactSMAP, Off, ""},
		{"arm has no flags line", map[string]string{pathCPUInfo: "Features\t: fp asimd\n"}, FactNX, Unknown, ""},
		{"cpuinfo missing", map[string]string{pathCPUInfo: del}, FactSMEP, Unknown, ""},
		{"secure boot off", map[string]string{sb: "\x06\x00\x00\x00\x00"}, FactSecureBoot, Off, "0"},
		{"secure boot short", map[string]string{sb: "\x06\x00\x00\x00"}, FactSecureBoot, Unknown, ""},
		{"secure boot odd value", map[string]string{sb: "\x06\x00\x00\x00\x02"}, FactSecureBoot, Unknown, "2"},
		{"secure boot missing", map[string]string{sb: del}, FactSecureBoot, Unknown, ""},
		{"perf 2", map[string]string{pathPerfParanoid: "2\n"}, FactPerfParanoid, On, "2"},
		{"perf -1", map[string]string{pathPerfParanoid: "-1\n"}, FactPerfParanoid, Off, "-1"},
		{"kexec 0", map[string]string{pathKexecDisabled: "0\n"}, FactKexecDisabled, Off, "0"},
		{"symlinks 0", map[string]string{pathProtectSymlinks: "0\n"}, FactProtectSymlinks, Off, "0"},
		{"hardlinks missing", map[string]string{pathProtectHardlinks: del}, FactProtectHardlinks, Unknown, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if err := os.CopyFS(root, os.DirFS("testdata/hardened")); err != nil {
				t.Fatal(err)
			}
			for p, v := range tc.files {
				full := filepath.Join(root, filepath.FromSlash(p))
				var err error
				if v == del {
					err = os.Remove(full)
				} else {
					err = os.WriteFile(full, []byte(v), 0o644)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			f := factsByName(t, Collect(Options{Root: root, NoSelf: true}))[tc.fact]
			if f.Status != tc.want || f.Value != tc.value {
				t.Errorf("%s = %s value %q (%s), want %s value %q", tc.fact, f.Status, f.Value, f.Detail, tc.want, tc.value)
			}
		})
	}
}

// TestUnreadableIsUnknown: a file the agent may not read (as in a
// sandbox) makes its fact unknown, even when the file would say "off".
func TestUnreadableIsUnknown(t *testing.T) {
	root := filepath.Join("testdata", "weak")
	denied := filepath.Join(root, filepath.FromSlash(pathKptrRestrict))
	readFile := func(name string) ([]byte, error) {
		if name == denied {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
		}
		return os.ReadFile(name)
	}
	facts := factsByName(t, collect(Options{Root: root, NoSelf: true}, readFile))
	if f := facts[FactKptrRestrict]; f.Status != Unknown || f.Value != "" || f.Detail != "/"+pathKptrRestrict+" is not readable by the agent" {
		t.Errorf("unreadable kptr_restrict = %+v", f)
	}
	if f := facts[FactDmesgRestrict]; f.Status != Off {
		t.Errorf("the other facts are still read: dmesg_restrict = %+v", f)
	}
}

// TestNoEFI: a system booted without UEFI has no Secure Boot to read.
func TestNoEFI(t *testing.T) {
	f := factsByName(t, Collect(Options{Root: "testdata/container-arm64", NoSelf: true}))[FactSecureBoot]
	if f.Status != Unknown || f.Detail == "" {
		t.Errorf("secure boot without efivars = %+v", f)
	}
}

func TestSecureBoot(t *testing.T) {
	for tree, want := range map[string]string{"hardened": "enabled", "weak": "disabled", "container-arm64": "unknown"} {
		if got := SecureBoot(filepath.Join("testdata", tree)); got != want {
			t.Errorf("SecureBoot(%s) = %q, want %q", tree, got, want)
		}
	}
}
