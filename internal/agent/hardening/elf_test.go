package hardening

import (
	"debug/elf"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

const cProgram = "int main(void) { return 0; }\n"

// buildC compiles a tiny C program with gcc and the given flags.
func buildC(t *testing.T, flags ...string) string {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not installed")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "main.c")
	if err := os.WriteFile(src, []byte(cProgram), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "prog")
	args := append(append([]string{"-O0", "-o", out}, flags...), src)
	if b, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc %v: %v\n%s", args, err, b)
	}
	return out
}

// buildGo builds a tiny Go program with the go toolchain.
func buildGo(t *testing.T, args ...string) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module prog\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "prog")
	cmd := exec.Command(goTool, append(append([]string{"build", "-o", out}, args...), ".")...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %v: %v\n%s", args, err, b)
	}
	return out
}

// dropStack rewrites a copy of the ELF file at path so that its
// PT_GNU_STACK header becomes PT_NULL, as in binaries from toolchains that
// emit none.
func dropStack(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Class != elf.ELFCLASS64 || f.Data != elf.ELFDATA2LSB {
		t.Skip("the rewrite handles little-endian 64-bit ELF only")
	}
	phoff := binary.LittleEndian.Uint64(b[0x20:])
	phentsize := uint64(binary.LittleEndian.Uint16(b[0x36:]))
	done := false
	for i, p := range f.Progs {
		if p.Type == elf.PT_GNU_STACK {
			binary.LittleEndian.PutUint32(b[phoff+uint64(i)*phentsize:], uint32(elf.PT_NULL))
			done = true
		}
	}
	if !done {
		t.Fatal("no PT_GNU_STACK to drop")
	}
	out := filepath.Join(t.TempDir(), "nostack")
	if err := os.WriteFile(out, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBinary(t *testing.T) {
	type want struct{ pie, relro, nx string }
	for _, tc := range []struct {
		name  string
		build func(t *testing.T) string
		want  want
	}{
		{"gcc no-pie norelro", func(t *testing.T) string {
			return buildC(t, "-no-pie", "-Wl,-z,norelro", "-z", "noexecstack")
		}, want{Off, Off, On}},
		{"gcc pie partial relro", func(t *testing.T) string {
			return buildC(t, "-fPIE", "-pie", "-Wl,-z,relro,-z,lazy")
		}, want{On, Partial, On}},
		{"gcc pie full relro", func(t *testing.T) string {
			return buildC(t, "-fPIE", "-pie", "-Wl,-z,relro,-z,now")
		}, want{On, Full, On}},
		{"gcc execstack", func(t *testing.T) string {
			return buildC(t, "-fPIE", "-pie", "-z", "execstack")
		}, want{On, "", Off}},
		{"gcc without PT_GNU_STACK", func(t *testing.T) string {
			return dropStack(t, buildC(t, "-fPIE", "-pie", "-z", "noexecstack"))
		}, want{On, "", Off}},
		{"go default (static, ET_EXEC)", func(t *testing.T) string {
			return buildGo(t)
		}, want{Off, Off, On}},
		{"go pie", func(t *testing.T) string {
			return buildGo(t, "-buildmode=pie")
		}, want{On, Partial, On}},
		{"go pie bindnow", func(t *testing.T) string {
			return buildGo(t, "-buildmode=pie", "-ldflags=-bindnow")
		}, want{On, Full, On}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.build(t)
			got := Binary(path)
			if got.Path != path {
				t.Errorf("path = %q", got.Path)
			}
			if got.PIE != tc.want.pie || (tc.want.relro != "" && got.RELRO != tc.want.relro) || got.NXStack != tc.want.nx {
				t.Errorf("Binary = pie %s relro %s nx %s (%s), want %+v", got.PIE, got.RELRO, got.NXStack, got.Detail, tc.want)
			}
		})
	}
}

func TestBinaryUnreadable(t *testing.T) {
	notELF := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{notELF, filepath.Join(t.TempDir(), "missing")} {
		got := Binary(p)
		if got.PIE != Unknown || got.RELRO != Unknown || got.NXStack != Unknown || got.Detail == "" {
			t.Errorf("Binary(%s) = %+v, want all unknown with a reason", p, got)
		}
	}
}

// TestCollectSelf: by default Collect checks the running binary first,
// then the managed ones.
func TestCollectSelf(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	managed := buildC(t, "-fPIE", "-pie", "-Wl,-z,relro,-z,now")
	rep := Collect(Options{Root: "testdata/hardened", Binaries: []string{managed}})
	if len(rep.Binaries) != 2 || rep.Binaries[0].Path != self || rep.Binaries[1].Path != managed {
		t.Fatalf("binaries = %+v, want %s then %s", rep.Binaries, self, managed)
	}
	if b := rep.Binaries[0]; b.PIE == Unknown || b.RELRO == Unknown || b.NXStack == Unknown {
		t.Errorf("the test binary is a readable ELF file: %+v", b)
	}
	if b := rep.Binaries[1]; b.RELRO != Full {
		t.Errorf("managed binary = %+v", b)
	}
}
