package journal

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

const crashEnv = "BULWARK_JOURNAL_CRASH_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashEnv); dir != "" {
		// Crash child: append until killed.
		j, err := Open(dir, Options{DeviceID: "dev-1", SegmentBytes: 4096, MaxBytes: 64 << 10})
		if err != nil {
			os.Exit(2)
		}
		for i := 1; ; i++ {
			if _, err := j.Append(testEvent(&testing.B{}, i)); err != nil {
				os.Exit(3)
			}
		}
	}
	os.Exit(m.Run())
}

// TestKilledMidAppend kills a process appending in a loop and checks the
// journal reopens with an intact chain and keeps going.
func TestKilledMidAppend(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(segFiles(t, dir)) < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	j := open(t, dir, 4096, 64<<10)
	defer j.Close()
	last := j.LastSeq()
	if last < 10 {
		t.Fatalf("only %d records before the kill", last)
	}
	if err := j.Verify(); err != nil {
		out, _ := exec.Command("sh", "-c", "ls -la "+dir+"; cut -c1-30 "+dir+"/seg-*; cat "+dir+"/meta.json").CombinedOutput()
		t.Fatalf("%v\n%s", err, out)
	}
	if seq, err := j.Append(testEvent(t, int(last)+1)); err != nil || seq != last+1 {
		t.Fatal(seq, err)
	}
	if err := j.Verify(); err != nil {
		t.Fatal(err)
	}
}
