package tpm_test

import (
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/tpm"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startSwtpm runs a swtpm (Debian package swtpm) with a fresh state
// directory and returns its "swtpm:HOST:PORT" spec.
func startSwtpm(t *testing.T) string {
	t.Helper()
	return runSwtpm(t, t.TempDir())
}

// runSwtpm runs swtpm on the TPM state in dir.
func runSwtpm(t *testing.T, dir string) string {
	t.Helper()
	bin, err := exec.LookPath("swtpm")
	if err != nil {
		t.Skip("swtpm not installed (apt-get install swtpm)")
	}
	port, ctrl := freePort(t), freePort(t)
	cmd := exec.Command(bin, "socket", "--tpm2", "--tpmstate", "dir="+dir,
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

// TestSwtpm runs the device key against a real swtpm over its TCP server
// socket: create, sign, reconnect, reload, sign again.
func TestSwtpm(t *testing.T) {
	spec := startSwtpm(t)
	tp, err := tpm.Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	k, err := tp.CreateDeviceKey()
	if err != nil {
		tp.Close()
		t.Fatal(err)
	}
	signVerify(t, k, "swtpm")
	area, err := k.PublicArea()
	if err != nil || !area.ObjectAttributes.FixedTPM || !area.ObjectAttributes.FixedParent {
		t.Errorf("public area %+v, %v", area, err)
	}
	pub, priv := k.PublicBlob(), k.PrivateBlob()
	k.Close()
	tp.Close()

	// A second connection (swtpm already started: TPM_RC_INITIALIZE is fine).
	tp2, err := tpm.Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer tp2.Close()
	k2, err := tp2.LoadDeviceKey(pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	defer k2.Close()
	signVerify(t, k2, "swtpm again")
}
