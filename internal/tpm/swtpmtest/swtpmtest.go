// Package swtpmtest runs real software TPMs (swtpm, from Debian's swtpm
// and swtpm-tools packages) for tests: fresh state in a temporary
// directory, optionally manufactured with an EK certificate chain from a
// local CA, served over TCP on loopback. Tests skip with the reason when
// the binaries are missing; CI installs them.
package swtpmtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TPM is a running swtpm.
type TPM struct {
	// Spec is the tpm.Open spec, "swtpm:127.0.0.1:PORT".
	Spec string
	// CADir holds the local CA's issuercert.pem (the EK certificate's
	// issuer) when the TPM was made with StartWithEKCert.
	CADir string
	// StateDir is the swtpm state directory.
	StateDir string
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func need(t testing.TB, bins ...string) {
	t.Helper()
	for _, bin := range bins {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed (apt-get install swtpm swtpm-tools)", bin)
		}
	}
}

// Start runs a swtpm with a fresh, unmanufactured state until the test
// ends.
func Start(t testing.TB) *TPM {
	t.Helper()
	need(t, "swtpm")
	dir := t.TempDir()
	return &TPM{Spec: run(t, dir), StateDir: dir}
}

// StartWithEKCert manufactures a TPM with swtpm_setup, with an EK
// certificate (and platform certificate) in NV issued by a local CA in a
// temporary directory, and runs it until the test ends.
func StartWithEKCert(t testing.TB) *TPM {
	t.Helper()
	need(t, "swtpm", "swtpm_setup", "swtpm_localca")
	localca, _ := exec.LookPath("swtpm_localca")
	dir := t.TempDir()
	state, caDir := filepath.Join(dir, "state"), filepath.Join(dir, "ca")
	for _, d := range []string{state, caDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"localca.conf":    fmt.Sprintf("statedir = %[1]s\nsigningkey = %[1]s/signkey.pem\nissuercert = %[1]s/issuercert.pem\ncertserial = %[1]s/certserial\n", caDir),
		"localca.options": "--platform-manufacturer Bulwark\n--platform-version 2.1\n--platform-model test\n",
		"setup.conf": fmt.Sprintf("create_certs_tool = %s\ncreate_certs_tool_config = %s\ncreate_certs_tool_options = %s\nactive_pcr_banks = sha256\n",
			localca, filepath.Join(dir, "localca.conf"), filepath.Join(dir, "localca.options")),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("swtpm_setup", "--tpm2", "--tpmstate", state, "--create-ek-cert", "--create-platform-cert",
		"--config", filepath.Join(dir, "setup.conf"), "--overwrite")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("swtpm_setup: %v\n%s", err, out)
	}
	return &TPM{Spec: run(t, state), CADir: caDir, StateDir: state}
}

// run starts swtpm on the state in dir and waits for its server socket.
func run(t testing.TB, dir string) string {
	t.Helper()
	port, ctrl := freePort(t), freePort(t)
	cmd := exec.Command("swtpm", "socket", "--tpm2", "--tpmstate", "dir="+dir,
		"--server", "type=tcp,bindaddr=127.0.0.1,port="+strconv.Itoa(port),
		"--ctrl", "type=tcp,bindaddr=127.0.0.1,port="+strconv.Itoa(ctrl),
		"--flags", "not-need-init")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := "127.0.0.1:" + strconv.Itoa(port)
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if i == 100 {
			t.Fatalf("swtpm did not listen on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "swtpm:" + addr
}
