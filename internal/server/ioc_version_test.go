package server

import (
	"testing"

	"github.com/bulwark-iot/bulwark/internal/api"
)

// TestDeviceIoCVersionAction: the version devices see (the ETag) changes
// with the device action as well as with the indicators.
func TestDeviceIoCVersionAction(t *testing.T) {
	a, b := &iocDeviceSet{version: "0011"}, &iocDeviceSet{version: "0012"}
	seen := map[string]bool{}
	for _, v := range []string{a.servedVersion(api.IoCActionFlag), a.servedVersion(api.IoCActionBlock), b.servedVersion(api.IoCActionFlag), b.servedVersion(api.IoCActionBlock)} {
		if seen[v] || len(v) != 24 {
			t.Fatalf("served version %q repeated or not 24 hex digits", v)
		}
		seen[v] = true
	}
	if a.servedVersion(api.IoCActionBlock) != a.servedVersion(api.IoCActionBlock) {
		t.Fatal("served version is not deterministic")
	}
}
