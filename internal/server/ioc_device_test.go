package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/deviceclient"
	"github.com/bulwark-iot/bulwark/internal/server"
	"github.com/bulwark-iot/bulwark/internal/server/servertest"
)

// TestDeviceIoCAction: the fleet's device action travels in the set, each
// indicator names its source, and the ETag is the version (whose
// dependence on the action TestDeviceIoCVersionAction checks).
func TestDeviceIoCAction(t *testing.T) {
	ctx := context.Background()
	for _, action := range []string{"", api.IoCActionBlock} {
		ts := servertest.Start(t, servertest.Options{Config: server.Config{IoC: server.IoCConfig{DeviceAction: action}}})
		d := enroll(t, ts, ts.EnrollToken(t, 1, ""), "ioc-action")
		importIoC(t, ts, "name=blocklist", []byte("198.51.100.66\n203.0.113.0/24\n"), nil)
		body, etag, err := d.client.FetchIoC(ctx, "", 1<<20)
		if err != nil {
			t.Fatalf("action %q: %v", action, err)
		}
		var set api.DeviceIoCSet
		if err := json.Unmarshal(body, &set); err != nil {
			t.Fatal(err)
		}
		want := action
		if want == "" {
			want = api.IoCActionFlag
		}
		if set.Action != want || set.Version != etag || len(set.Indicators) != 2 {
			t.Fatalf("action %q: set %+v, etag %q", action, set, etag)
		}
		for _, in := range set.Indicators {
			if in.Source != "blocklist" {
				t.Errorf("indicator %+v: source %q, want blocklist", in, in.Source)
			}
		}
		if _, _, err := d.client.FetchIoC(ctx, etag, 1<<20); !errors.Is(err, deviceclient.ErrNotModified) {
			t.Fatalf("action %q: fetch with the current ETag: %v, want ErrNotModified", action, err)
		}
		if _, _, err := d.client.FetchIoC(ctx, "", 10); !errors.Is(err, deviceclient.ErrIoCTooLarge) {
			t.Fatalf("action %q: fetch bounded to 10 bytes: %v, want ErrIoCTooLarge", action, err)
		}
	}
}

func TestDeviceIoCActionInvalid(t *testing.T) {
	_, err := server.New(context.Background(), server.Config{DataDir: t.TempDir(), IoC: server.IoCConfig{DeviceAction: "drop"}})
	if err == nil || !strings.Contains(err.Error(), `"drop"`) {
		t.Fatalf("server.New with device action drop: %v", err)
	}
}
