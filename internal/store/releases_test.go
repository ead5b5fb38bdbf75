package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/bulwark-iot/bulwark/internal/store"
	"github.com/bulwark-iot/bulwark/internal/store/storetest"
)

func TestReleasesMonotonicAndFloors(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		rel := func(v string) *store.Release {
			return &store.Release{ID: "rel-" + v, Product: "cam", Version: v, Target: "cam/" + v + "/fw.tar.gz", Length: 10,
				SHA256: "aa", SHA512: "bb", Installer: "app", CreatedAt: t0, CreatedBy: "admin"}
		}
		// newer: the candidate must not be among the published ones and
		// must sort after all of them (lexically here, for the test).
		newer := func(v string) func([]string) bool {
			return func(pub []string) bool {
				for _, p := range pub {
					if p >= v {
						return false
					}
				}
				return true
			}
		}
		for _, v := range []string{"1.0.0", "1.1.0"} {
			if err := s.CreateRelease(ctx, rel(v), newer(v)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.CreateRelease(ctx, rel("1.0.5"), newer("1.0.5")); !errors.Is(err, store.ErrNotNewer) {
			t.Fatalf("older release accepted: %v", err)
		}
		if _, err := s.GetRelease(ctx, "cam", "1.0.5"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("refused release stored: %v", err)
		}
		list, err := s.ListReleases(ctx, "cam")
		if err != nil || len(list) != 2 {
			t.Fatalf("list = %d, %v", len(list), err)
		}
		if err := s.SetReleaseSBOM(ctx, "cam", "1.1.0", "cc"); err != nil {
			t.Fatal(err)
		}
		if r, _ := s.GetRelease(ctx, "cam", "1.1.0"); r.SBOMSHA256 != "cc" {
			t.Fatalf("sbom = %q", r.SBOMSHA256)
		}
		up := func(min string) func(string) bool { return func(cur string) bool { return min > cur } }
		if err := s.SetVersionFloor(ctx, &store.VersionFloor{Product: "cam", MinVersion: "1.1.0", UpdatedAt: t0, UpdatedBy: "a"}, up("1.1.0")); err != nil {
			t.Fatal(err)
		}
		if err := s.SetVersionFloor(ctx, &store.VersionFloor{Product: "cam", MinVersion: "1.0.0", UpdatedAt: t0, UpdatedBy: "a"}, up("1.0.0")); !errors.Is(err, store.ErrNotNewer) {
			t.Fatalf("floor lowered: %v", err)
		}
		fl, _ := s.VersionFloors(ctx)
		if len(fl) != 1 || fl[0].MinVersion != "1.1.0" {
			t.Fatalf("floors = %+v", fl)
		}
	})
}
