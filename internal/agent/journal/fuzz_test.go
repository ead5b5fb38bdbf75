package journal

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzOpen: whatever a segment holds, Open, Verify, Read and Append never
// panic, and an opened journal that verifies stays verifiable after an
// append.
func FuzzOpen(f *testing.F) {
	dir := f.TempDir()
	j, err := Open(dir, Options{DeviceID: "dev-1"})
	if err != nil {
		f.Fatal(err)
	}
	appendN(f, j, 1, 3)
	j.Close()
	good, _ := os.ReadFile(filepath.Join(dir, segName(1)))
	f.Add(good)
	f.Add(good[:len(good)-5])
	f.Add([]byte("{}\n"))
	f.Add([]byte("\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, segName(1)), data, 0o600)
		j, err := Open(dir, Options{DeviceID: "dev-1", NoSync: true})
		if err != nil {
			return
		}
		defer j.Close()
		j.Read(1, 10)
		ok := j.Verify() == nil
		if _, err := j.Append(testEvent(t, 1)); err != nil {
			return
		}
		if ok {
			if err := j.Verify(); err != nil {
				t.Fatalf("verified journal broken by an append: %v", err)
			}
		}
	})
}
