//go:build unix

package update

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Environment of the crashing child process.
const (
	crashEnvPoint  = "BULWARK_UPDATE_CRASH_POINT" // point[#occurrence]
	crashEnvRoot   = "BULWARK_UPDATE_CRASH_ROOT"
	crashEnvURL    = "BULWARK_UPDATE_CRASH_URL"
	crashEnvSHA256 = "BULWARK_UPDATE_CRASH_SHA256"
	crashEnvLength = "BULWARK_UPDATE_CRASH_LENGTH"
	crashEnvHealth = "BULWARK_UPDATE_CRASH_HEALTH" // "fail" for a failing health check
)

// TestMain runs the child half of TestCrashSafety when the test binary is
// re-executed with a crash point in its environment; otherwise the tests.
func TestMain(m *testing.M) {
	if os.Getenv(crashEnvPoint) != "" {
		crashChild()
		os.Exit(3)
	}
	os.Exit(m.Run())
}

// crashChild runs an update and SIGKILLs itself at the named point.
func crashChild() {
	point := os.Getenv(crashEnvPoint)
	fatal := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
		os.Exit(2)
	}
	name, nth := point, 1
	if i := strings.IndexByte(point, '#'); i >= 0 {
		name = point[:i]
		nth, _ = strconv.Atoi(point[i+1:])
	}
	seen := 0
	hook := func(p string) {
		if p == name {
			if seen++; seen == nth {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {} // the signal is on its way
			}
		}
	}
	root := os.Getenv(crashEnvRoot)
	sum, _ := hex.DecodeString(os.Getenv(crashEnvSHA256))
	length, _ := strconv.ParseInt(os.Getenv(crashEnvLength), 10, 64)
	var health []string
	if os.Getenv(crashEnvHealth) == "fail" {
		health = []string{"false"}
	}
	inst := &AppInstaller{Root: root, hook: hook}
	progress := func(done, total int64) {
		if done >= total/2 {
			hook("downloading")
		}
	}
	u, err := New(Config{Root: root, Installer: inst, HealthCheck: health, Progress: progress, hook: hook})
	if err != nil {
		fatal("%v", err)
	}
	rep, err := u.Update(context.Background(), os.Getenv(crashEnvURL),
		Target{Length: length, Hashes: map[string][]byte{"sha256": sum}}, Release{Product: "app", Version: "2.0.0"})
	fatal("crash point %s never reached: %+v, %v", point, rep, err)
}

// TestCrashSafety kills an update (SIGKILL, in a child process) at each
// step of install, switch and rollback, then checks that current always
// points to a complete version, and that Resume ends the update on the
// expected version with a consistent journal.
func TestCrashSafety(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	cases := []struct {
		point      string
		failHealth bool
		want       string // active version after Resume
		phase      Phase  // journal phase after Resume
	}{
		// Before the switch: undone, the old version stays.
		{point: "downloading", want: "1.0.0", phase: PhaseFailed},
		{point: "downloaded", want: "1.0.0", phase: PhaseFailed},
		{point: "extracted", want: "1.0.0", phase: PhaseFailed},
		// During the switch: finished, checked and committed.
		{point: "symlinked", want: "2.0.0", phase: PhaseCommitted},
		{point: "before-rename", want: "2.0.0", phase: PhaseCommitted},
		{point: "renamed", want: "2.0.0", phase: PhaseCommitted},
		// During the health check or before the journal says committed:
		// not proven, so rolled back.
		{point: "switched", want: "1.0.0", phase: PhaseRolledBack},
		{point: "healthy", want: "1.0.0", phase: PhaseRolledBack},
		// During a rollback (the health check failed): finished.
		{point: "rolling-back", failHealth: true, want: "1.0.0", phase: PhaseRolledBack},
		{point: "symlinked#2", failHealth: true, want: "1.0.0", phase: PhaseRolledBack},
		{point: "before-rename#2", failHealth: true, want: "1.0.0", phase: PhaseRolledBack},
		{point: "renamed#2", failHealth: true, want: "1.0.0", phase: PhaseRolledBack},
	}
	srv := newArtifactServer(t)
	url, want := srv.add("app-2.0.0", appArchive(t, "2.0.0"))
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.point, "#", "_"), func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			installVersion(t, srv, root, "1.0.0")

			cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.count=1")
			cmd.Env = append(os.Environ(),
				crashEnvPoint+"="+tc.point, crashEnvRoot+"="+root, crashEnvURL+"="+url,
				crashEnvSHA256+"="+hex.EncodeToString(want.Hashes["sha256"]),
				crashEnvLength+"="+strconv.FormatInt(want.Length, 10))
			if tc.failHealth {
				cmd.Env = append(cmd.Env, crashEnvHealth+"=fail")
			}
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("child was not killed at %s: %v\n%s", tc.point, err, out)
			}

			// Even before recovery, current names a complete version.
			u, inst := newTestUpdater(t, root)
			cur, err := inst.Current(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if cur != "1.0.0" && cur != "2.0.0" {
				t.Fatalf("after the crash current is %q", cur)
			}
			assertComplete(t, root, cur)
			before, err := u.Journal()
			if err != nil || before == nil || before.Phase.Final() {
				t.Fatalf("journal after the crash: %+v, %v", before, err)
			}

			rep, err := u.Resume(context.Background())
			if rep == nil {
				t.Fatalf("Resume: no report, %v", err)
			}
			if (err == nil) != (tc.phase == PhaseCommitted) {
				t.Errorf("Resume error %v with phase %s", err, tc.phase)
			}
			assertActive(t, root, tc.want)
			assertNoLeftovers(t, root)
			j := readJournal(t, root)
			if j.Phase != tc.phase || j.From != "1.0.0" || j.To != "2.0.0" {
				t.Errorf("journal after Resume: %+v (was %s)", j, before.Phase)
			}
			if tc.phase != PhaseCommitted && j.Reason == "" {
				t.Errorf("no reason recorded: %+v", j)
			}
			if (tc.phase == PhaseCommitted) != (rep.Outcome == OutcomeInstalled) {
				t.Errorf("report %+v", rep)
			}
			if tc.phase == PhaseRolledBack {
				if _, err := os.Stat(root + "/versions/2.0.0"); err == nil {
					t.Error("rolled-back version kept")
				}
			}

			// A second Resume has nothing to do, and the next update works.
			if rep, err := u.Resume(context.Background()); rep != nil || err != nil {
				t.Errorf("second Resume: %+v, %v", rep, err)
			}
			if tc.want == "1.0.0" {
				rep, err := u.Update(context.Background(), url, want, Release{Product: "app", Version: "2.0.0"})
				if err != nil || rep.Outcome != OutcomeInstalled {
					t.Fatalf("update after recovery: %+v, %v", rep, err)
				}
				assertActive(t, root, "2.0.0")
			}
		})
	}
}
