package tpm_test

import (
	"testing"

	"github.com/bulwark-iot/bulwark/internal/tpm"
	"github.com/bulwark-iot/bulwark/internal/tpm/swtpmtest"
)

// startSwtpm runs a swtpm (Debian package swtpm) with a fresh state
// directory and returns its "swtpm:HOST:PORT" spec.
func startSwtpm(t *testing.T) string {
	t.Helper()
	return swtpmtest.Start(t).Spec
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
