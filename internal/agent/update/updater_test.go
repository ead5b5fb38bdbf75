package update

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestUpdateInstallsAndKeepsPrevious(t *testing.T) {
	t.Parallel()
	srv := newArtifactServer(t)
	root := t.TempDir()
	installVersion(t, srv, root, "1.0.0")
	assertActive(t, root, "1.0.0")

	u, inst := newTestUpdater(t, root, "sh", "-c", `test "$BULWARK_UPDATE_FROM" = 1.0.0 && test "$BULWARK_UPDATE_TO" = 1.1.0 && test -x `+root+`/current/bin/app`)
	url, want := srv.add("app-1.1.0", appArchive(t, "1.1.0"))
	rep, err := u.Update(context.Background(), url, want, Release{Product: "app", Version: "1.1.0"})
	if err != nil {
		t.Fatalf("%+v, %v", rep, err)
	}
	if rep.Outcome != OutcomeInstalled || rep.From != "1.0.0" || rep.To != "1.1.0" || rep.Health == nil || !rep.Health.OK {
		t.Errorf("report %+v", rep)
	}
	assertActive(t, root, "1.1.0")
	assertComplete(t, root, "1.0.0") // kept for rollback
	assertNoLeftovers(t, root)
	if j := readJournal(t, root); j.Phase != PhaseCommitted || j.From != "1.0.0" || j.To != "1.1.0" {
		t.Errorf("journal %+v", j)
	}
	if got, _ := inst.Current(context.Background()); got != "1.1.0" {
		t.Errorf("Current = %q", got)
	}
	// Installed artifacts do not pile up.
	if names := dirEntries(t, filepath.Join(root, "downloads")); len(names) != 0 {
		t.Errorf("downloads hold %v", names)
	}

	// The same release again is a no-op without a request.
	n := srv.requests.Load()
	rep, err = u.Update(context.Background(), url, want, Release{Product: "app", Version: "1.1.0"})
	if err != nil || rep.Outcome != OutcomeUnchanged || srv.requests.Load() != n {
		t.Errorf("reinstall: %+v, %v", rep, err)
	}

	// A third version drops the oldest.
	u, _ = newTestUpdater(t, root)
	url, want = srv.add("app-2.0.0", appArchive(t, "2.0.0"))
	if _, err := u.Update(context.Background(), url, want, Release{Product: "app", Version: "2.0.0"}); err != nil {
		t.Fatal(err)
	}
	if names := dirEntries(t, filepath.Join(root, "versions")); strings.Join(names, ",") != "1.1.0,2.0.0" {
		t.Errorf("versions %v", names)
	}
}

func TestUpdateRefusesDowngrade(t *testing.T) {
	t.Parallel()
	srv := newArtifactServer(t)
	root := t.TempDir()
	installVersion(t, srv, root, "2.0.0")
	u, _ := newTestUpdater(t, root)
	for _, v := range []string{"1.9.9", "2.0.0-rc.1", "2.0.0+other-build"} {
		url, want := srv.add("app-"+v, appArchive(t, v))
		n := srv.requests.Load()
		rep, err := u.Update(context.Background(), url, want, Release{Product: "app", Version: v})
		if !errors.Is(err, ErrDowngrade) {
			t.Fatalf("%s: err = %v, want ErrDowngrade", v, err)
		}
		if rep == nil || rep.Outcome != OutcomeFailed || !strings.Contains(rep.Reason, "not newer") {
			t.Errorf("%s: report %+v", v, rep)
		}
		if srv.requests.Load() != n {
			t.Errorf("%s: downloaded before refusing", v)
		}
		assertActive(t, root, "2.0.0")
	}
	// The installer refuses on its own too.
	inst := &AppInstaller{Root: root}
	if err := inst.Install(context.Background(), "/nonexistent", Release{Version: "1.0.0"}); !errors.Is(err, ErrDowngrade) {
		t.Errorf("installer: %v", err)
	}

	// An explicit downgrade is allowed.
	url, want := srv.add("app-1.5.0", appArchive(t, "1.5.0"))
	if _, err := u.Update(context.Background(), url, want, Release{Product: "app", Version: "1.5.0", AllowDowngrade: true}); err != nil {
		t.Fatal(err)
	}
	assertActive(t, root, "1.5.0")
}

func TestUpdateHealthCheckFailureRollsBack(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		cmd    []string
		reason string
	}{
		"exit status": {[]string{"sh", "-c", "echo database unreachable >&2; exit 3"}, "exit status 3"},
		"timeout":     {[]string{"sleep", "30"}, "timed out"},
		"missing":     {[]string{"/nonexistent/health"}, "no such file"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := newArtifactServer(t)
			root := t.TempDir()
			installVersion(t, srv, root, "1.0.0")
			u, _ := newTestUpdater(t, root, tc.cmd...)
			u.cfg.HealthTimeout = 300 * time.Millisecond
			url, want := srv.add("app-2.0.0", appArchive(t, "2.0.0"))
			rep, err := u.Update(context.Background(), url, want, Release{Product: "app", Version: "2.0.0"})
			if err == nil {
				t.Fatal("failed health check reported success")
			}
			if rep == nil || rep.Outcome != OutcomeRolledBack || rep.Phase != PhaseHealthCheck ||
				!strings.Contains(rep.Reason, tc.reason) || rep.Health == nil || rep.Health.OK {
				t.Fatalf("report %+v", rep)
			}
			if name == "exit status" && (rep.Health.ExitCode != 3 || !strings.Contains(rep.Health.Output, "database unreachable")) {
				t.Errorf("health %+v", rep.Health)
			}
			assertActive(t, root, "1.0.0")
			assertNoLeftovers(t, root)
			if _, err := os.Stat(filepath.Join(root, "versions", "2.0.0")); err == nil {
				t.Error("failed version kept")
			}
			if j := readJournal(t, root); j.Phase != PhaseRolledBack || !strings.Contains(j.Reason, tc.reason) {
				t.Errorf("journal %+v", j)
			}
		})
	}
}

func TestUpdateFirstInstallRollsBackToNothing(t *testing.T) {
	t.Parallel()
	srv := newArtifactServer(t)
	root := t.TempDir()
	u, _ := newTestUpdater(t, root, "false")
	url, want := srv.add("app-1.0.0", appArchive(t, "1.0.0"))
	rep, err := u.Update(context.Background(), url, want, Release{Version: "1.0.0"})
	if err == nil || rep.Outcome != OutcomeRolledBack {
		t.Fatalf("%+v, %v", rep, err)
	}
	if _, err := os.Lstat(filepath.Join(root, "current")); !os.IsNotExist(err) {
		t.Errorf("current after failed first install: %v", err)
	}
}

func TestUpdateTamperedArtifactInstallsNothing(t *testing.T) {
	t.Parallel()
	srv := newArtifactServer(t)
	root := t.TempDir()
	installVersion(t, srv, root, "1.0.0")
	u, _ := newTestUpdater(t, root)
	good := appArchive(t, "2.0.0")
	_, want := srv.add("good", good)
	url, _ := srv.add("evil", appArchive(t, "6.6.6"))
	rep, err := u.Update(context.Background(), url, want, Release{Version: "2.0.0"})
	if !errors.Is(err, ErrHashMismatch) && !errors.Is(err, ErrLengthMismatch) && !errors.Is(err, ErrTooLong) {
		t.Fatalf("err = %v", err)
	}
	if rep.Outcome != OutcomeFailed || rep.Phase != PhaseDownloading {
		t.Errorf("report %+v", rep)
	}
	assertActive(t, root, "1.0.0")
	if names := dirEntries(t, filepath.Join(root, "versions")); len(names) != 1 {
		t.Errorf("versions %v", names)
	}
}

// TestUnsafeArchives: each archive is refused, nothing is written outside
// the version directory, nothing is switched, and nothing is left.
func TestUnsafeArchives(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("0", 1<<20)
	cases := map[string][]entry{
		"dotdot":            {{name: "../x", body: "x"}},
		"dotdot inside":     {{name: "a/../../x", body: "x"}},
		"absolute":          {{name: "/tmp/x", body: "x"}},
		"symlink escape":    {{name: "l", typ: tar.TypeSymlink, link: "../../../etc"}},
		"symlink absolute":  {{name: "l", typ: tar.TypeSymlink, link: "/etc/passwd"}},
		"symlink deep":      {{name: "a/b/l", typ: tar.TypeSymlink, link: "../../../x"}},
		"symlink chain":     {{name: "a/", typ: tar.TypeDir}, {name: "c", typ: tar.TypeSymlink, link: "a/b/../.."}, {name: "a/b", typ: tar.TypeSymlink, link: ".."}},
		"write via symlink": {{name: "d/", typ: tar.TypeDir}, {name: "l", typ: tar.TypeSymlink, link: "d"}, {name: "l/x", body: "x"}},
		"replace symlink":   {{name: "l", typ: tar.TypeSymlink, link: "d"}, {name: "l", body: "x"}},
		"hardlink escape":   {{name: "h", typ: tar.TypeLink, link: "../outside/secret"}},
		"hardlink absolute": {{name: "h", typ: tar.TypeLink, link: "/etc/passwd"}},
		"hardlink missing":  {{name: "h", typ: tar.TypeLink, link: "nothing"}},
		"hardlink via link": {{name: "d/f", body: "x"}, {name: "l", typ: tar.TypeSymlink, link: "d"}, {name: "h", typ: tar.TypeLink, link: "l/f"}},
		"char device":       {{name: "null", typ: tar.TypeChar}},
		"block device":      {{name: "sda", typ: tar.TypeBlock}},
		"fifo":              {{name: "p", typ: tar.TypeFifo}},
		"setuid":            {{name: "bin/su", body: "x", mode: 0o4755}},
		"setgid":            {{name: "bin/sg", body: "x", mode: 0o2755}},
		"setgid directory":  {{name: "d/", typ: tar.TypeDir, mode: 0o2755}},
		"too deep":          {{name: strings.Repeat("d/", 65) + "f", body: "x"}},
		"name too long":     {{name: strings.Repeat("n", 5000), body: "x"}},
		"too many files":    {{name: "a", body: "1"}, {name: "b", body: "2"}, {name: "c", body: "3"}, {name: "d", body: "4"}, {name: "e", body: "5"}},
		"too large":         {{name: "a", body: big}, {name: "b", body: big}, {name: "c", body: big}},
	}
	for name, entries := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := newArtifactServer(t)
			base := t.TempDir()
			root := filepath.Join(base, "root")
			outside := filepath.Join(base, "outside")
			os.MkdirAll(outside, 0o755)
			os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o600)
			installVersion(t, srv, root, "1.0.0")

			inst := &AppInstaller{Root: root, MaxFiles: 4, MaxBytes: 2 << 20}
			u, err := New(Config{Root: root, Installer: inst})
			if err != nil {
				t.Fatal(err)
			}
			url, want := srv.add("evil", tarGz(t, entries))
			rep, err := u.Update(context.Background(), url, want, Release{Version: "2.0.0"})
			if !errors.Is(err, ErrUnsafeArchive) {
				t.Fatalf("err = %v, want ErrUnsafeArchive", err)
			}
			t.Log(err)
			if rep.Outcome != OutcomeFailed || rep.Phase != PhaseInstalling {
				t.Errorf("report %+v", rep)
			}
			assertActive(t, root, "1.0.0")
			assertNoLeftovers(t, root)
			if names := dirEntries(t, filepath.Join(root, "versions")); len(names) != 1 {
				t.Errorf("versions %v", names)
			}
			if names := dirEntries(t, outside); len(names) != 1 {
				t.Errorf("written outside: %v", names)
			}
			if names := dirEntries(t, base); len(names) != 2 {
				t.Errorf("written beside root: %v", names)
			}
			if j := readJournal(t, root); j.Phase != PhaseFailed || !strings.Contains(j.Reason, "unsafe archive") {
				t.Errorf("journal %+v", j)
			}
		})
	}
}

// TestDecompressionBomb: a small artifact that inflates past MaxBytes is
// cut off without writing it all.
func TestDecompressionBomb(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	tw := tar.NewWriter(zw)
	const size = 256 << 20
	tw.WriteHeader(&tar.Header{Name: "zeros", Typeflag: tar.TypeReg, Size: size, Mode: 0o644})
	zero := make([]byte, 1<<20)
	for i := 0; i < size/len(zero); i++ {
		tw.Write(zero)
	}
	tw.Close()
	zw.Close()
	if buf.Len() > 2<<20 {
		t.Fatalf("bomb is %d bytes", buf.Len())
	}
	root := t.TempDir()
	artifact := filepath.Join(t.TempDir(), "bomb.tar.gz")
	os.WriteFile(artifact, buf.Bytes(), 0o600)
	inst := &AppInstaller{Root: root, MaxBytes: 10 << 20}
	err := inst.Install(context.Background(), artifact, Release{Version: "1.0.0"})
	if !errors.Is(err, ErrUnsafeArchive) {
		t.Fatalf("err = %v", err)
	}
	if names := dirEntries(t, filepath.Join(root, "versions")); len(names) != 0 {
		t.Errorf("versions %v", names)
	}
}

func TestSafeArchiveFeatures(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	artifact := filepath.Join(t.TempDir(), "a.tar.gz")
	os.WriteFile(artifact, tarGz(t, []entry{
		{name: "./", typ: tar.TypeDir},
		{name: "./deep/er/file", body: "f", mode: 0o600},
		{name: "deep/up", typ: tar.TypeSymlink, link: "../top"},
		{name: "self", typ: tar.TypeSymlink, link: "."},
		{name: "dangling", typ: tar.TypeSymlink, link: "not/yet"},
		{name: "top", body: "t", mode: 0o755},
	}), 0o600)
	inst := &AppInstaller{Root: root}
	if err := inst.Install(context.Background(), artifact, Release{Version: "1.0.0"}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "versions", "1.0.0")
	if b, err := os.ReadFile(filepath.Join(dir, "deep", "up")); err != nil || string(b) != "t" {
		t.Errorf("deep/up: %q, %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "deep/er/file")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, %v", fi, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "top")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("mode %v, %v", fi, err)
	}
}

func TestParseVersion(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "1", "1.2", "v1.2.3", "01.2.3", "1.2.3-", "1.2.3-01", "1.2.3-a..b", "1.2.3+", "1.2.3+a_b", "1.2.3.4", "1.2.-3", "../1.2.3", "1.2.3/x"} {
		if _, err := ParseVersion(s); err == nil {
			t.Errorf("ParseVersion(%q) accepted", s)
		}
	}
	// Ascending precedence, from the SemVer 2.0.0 specification.
	order := []string{
		"0.0.1", "0.9.0", "1.0.0-0", "1.0.0-9", "1.0.0-10", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta",
		"1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "1.10.0", "2.0.0", "10.0.0",
	}
	for i, a := range order {
		for j, b := range order {
			c, err := CompareVersions(a, b)
			if err != nil {
				t.Fatal(err)
			}
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if c != want {
				t.Errorf("Compare(%s, %s) = %d, want %d", a, b, c, want)
			}
		}
	}
	if c, _ := CompareVersions("1.0.0+a", "1.0.0+b"); c != 0 {
		t.Error("build metadata compared")
	}
}

func FuzzParseVersion(f *testing.F) {
	for _, s := range []string{"1.2.3", "1.0.0-alpha.1+build.5", "0.0.0-0", "v1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseVersion(s)
		if err != nil {
			return
		}
		if strings.ContainsAny(s, "/\\\x00") || s == "." || s == ".." {
			t.Fatalf("%q accepted as a version (it names a directory)", s)
		}
		if v.Compare(v) != 0 {
			t.Fatalf("%q does not equal itself", s)
		}
	})
}

func TestResumeRefusesCorruptJournal(t *testing.T) {
	t.Parallel()
	srv := newArtifactServer(t)
	root := t.TempDir()
	installVersion(t, srv, root, "1.0.0")
	for _, bad := range []string{"{", `{"phase":"exploded","to":"2.0.0"}`, `{"phase":"committed","to":"2.0.0","extra":1}`} {
		os.WriteFile(filepath.Join(root, JournalFile), []byte(bad), 0o600)
		u, _ := newTestUpdater(t, root)
		if _, err := u.Resume(context.Background()); err == nil {
			t.Errorf("journal %s accepted", bad)
		}
		url, want := srv.add("app-2.0.0", appArchive(t, "2.0.0"))
		if _, err := u.Update(context.Background(), url, want, Release{Version: "2.0.0"}); err == nil {
			t.Errorf("update ran over journal %s", bad)
		}
		assertActive(t, root, "1.0.0")
	}
}

func TestUpdateUnreachableRollsBack(t *testing.T) {
	t.Parallel()
	srv := newArtifactServer(t)
	root := t.TempDir()
	installVersion(t, srv, root, "1.0.0")
	url, want := srv.add("app-2.0.0-unreachable", appArchive(t, "2.0.0"))
	u, err := New(Config{Root: root, Installer: &AppInstaller{Root: root},
		Reachable: func(context.Context) error { return errors.New("connection refused") }})
	if err != nil {
		t.Fatal(err)
	}
	rep, _ := u.Update(context.Background(), url, want, Release{Product: "app", Version: "2.0.0"})
	if rep == nil || rep.Outcome != OutcomeRolledBack || !strings.Contains(rep.Reason, "could not reach its server") {
		t.Fatalf("report %+v", rep)
	}
	if v, _ := (&AppInstaller{Root: root}).Current(context.Background()); v != "1.0.0" {
		t.Fatalf("active version %q after an unreachable update", v)
	}
}
