package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/store"
	"github.com/bulwark-iot/bulwark/internal/store/storetest"
)

func TestReferenceManifests(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		always := func([]string) bool { return true }
		for _, r := range []store.ReleaseRef{{"cam-fw", "1.0.0"}, {"cam-fw", "2.0.0"}, {"cam-app", "1.0.0"}} {
			rel := &store.Release{ID: "rel-" + r.Product + r.Version, Product: r.Product, Version: r.Version, Target: r.Product + "/" + r.Version + "/a",
				Length: 1, SHA256: "aa", SHA512: "bb", Installer: "app", CreatedAt: t0, CreatedBy: "admin"}
			if err := s.CreateRelease(ctx, rel, always); err != nil {
				t.Fatal(err)
			}
		}
		man := func(product, version, body string) *store.ReferenceManifest {
			return &store.ReferenceManifest{Product: product, Version: version, Manifest: body, SHA256: "sum-" + body, CreatedAt: t0, CreatedBy: "admin"}
		}

		// A release that does not exist has no reference values.
		if _, err := s.PutReferenceManifest(ctx, man("cam-fw", "9.9.9", `{}`), false); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("manifest of an unknown release: %v", err)
		}
		if prev, err := s.PutReferenceManifest(ctx, man("cam-fw", "1.0.0", `{"v":1}`), false); err != nil || prev != nil {
			t.Fatalf("put: %+v, %v", prev, err)
		}
		// One per release: replacing needs the flag, and reports what it
		// replaced.
		if _, err := s.PutReferenceManifest(ctx, man("cam-fw", "1.0.0", `{"v":2}`), false); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("second put without replace: %v", err)
		}
		if got, _ := s.GetReferenceManifest(ctx, "cam-fw", "1.0.0"); got.Manifest != `{"v":1}` {
			t.Fatalf("refused put changed the manifest to %s", got.Manifest)
		}
		later := man("cam-fw", "1.0.0", `{"v":2}`)
		later.CreatedAt, later.CreatedBy = t0.Add(time.Hour), "maker"
		prev, err := s.PutReferenceManifest(ctx, later, true)
		if err != nil || prev == nil || prev.Manifest != `{"v":1}` || prev.SHA256 != `sum-{"v":1}` || !prev.CreatedAt.Equal(t0) {
			t.Fatalf("replace: %+v, %v", prev, err)
		}
		got, err := s.GetReferenceManifest(ctx, "cam-fw", "1.0.0")
		if err != nil || got.Manifest != `{"v":2}` || got.SHA256 != `sum-{"v":2}` || got.CreatedBy != "maker" || !got.CreatedAt.Equal(t0.Add(time.Hour)) {
			t.Fatalf("get after replace: %+v, %v", got, err)
		}
		// Replace on a release without a manifest is a first put.
		if prev, err := s.PutReferenceManifest(ctx, man("cam-app", "1.0.0", `{"app":1}`), true); err != nil || prev != nil {
			t.Fatalf("replace without a previous manifest: %+v, %v", prev, err)
		}
		if _, err := s.GetReferenceManifest(ctx, "cam-fw", "2.0.0"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("get of a release without a manifest: %v", err)
		}

		// List returns those of the asked releases that have manifests,
		// whatever the number of pairs (padded to a power of two).
		for _, tc := range []struct {
			refs []store.ReleaseRef
			want []string
		}{
			{nil, nil},
			{[]store.ReleaseRef{{"cam-fw", "1.0.0"}}, []string{"cam-fw 1.0.0"}},
			{[]store.ReleaseRef{{"cam-fw", "2.0.0"}}, nil},
			{[]store.ReleaseRef{{"cam-fw", "2.0.0"}, {"cam-app", "1.0.0"}, {"cam-fw", "1.0.0"}}, []string{"cam-app 1.0.0", "cam-fw 1.0.0"}},
			{[]store.ReleaseRef{{"cam-fw", "1.0.0"}, {"cam-fw", "1.0.0"}, {"other", "1.0.0"}, {"cam-app", "2.0.0"}, {"cam-app", "1.0.0"}}, []string{"cam-app 1.0.0", "cam-fw 1.0.0"}},
		} {
			list, err := s.ListReferenceManifests(ctx, tc.refs)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, m := range list {
				names = append(names, m.Product+" "+m.Version)
			}
			if !slices.Equal(names, tc.want) {
				t.Errorf("list %v = %v, want %v", tc.refs, names, tc.want)
			}
		}
		many := make([]store.ReleaseRef, store.MaxReleaseRefs+1)
		if _, err := s.ListReferenceManifests(ctx, many); err == nil {
			t.Error("list of 65 releases accepted")
		}

		// The manifest goes with its release.
		if err := s.DeleteRelease(ctx, "cam-app", "1.0.0"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetReferenceManifest(ctx, "cam-app", "1.0.0"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("manifest outlived its release: %v", err)
		}
		if err := s.DeleteReferenceManifest(ctx, "cam-fw", "1.0.0"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetReferenceManifest(ctx, "cam-fw", "1.0.0"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleted manifest: %v", err)
		}
	})
}
