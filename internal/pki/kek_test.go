package pki

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func mustKEK(t testing.TB) KEK {
	t.Helper()
	k, err := LoadOrCreateKEK(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpenRoundTrip(t *testing.T) {
	t.Parallel()
	k := mustKEK(t)
	tests := []struct {
		name      string
		plaintext []byte
		aad       []byte
	}{
		{"empty", nil, nil},
		{"short", []byte("secret"), []byte("label")},
		{"no aad", []byte("secret"), nil},
		{"large", bytes.Repeat([]byte{0xa5}, 1<<20), []byte("backup:dev_x")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sealed, err := k.Seal(tt.plaintext, tt.aad)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := len(sealed), len(tt.plaintext)+sealOverhead; got != want {
				t.Errorf("sealed length = %d, want %d", got, want)
			}
			if sealed[0] != sealVersion1 {
				t.Errorf("version byte = %d, want %d", sealed[0], sealVersion1)
			}
			if len(tt.plaintext) > 0 && bytes.Contains(sealed, tt.plaintext) {
				t.Error("sealed data contains the plaintext")
			}
			got, err := k.Open(sealed, tt.aad)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.plaintext) {
				t.Error("Open did not return the plaintext")
			}
			again, err := k.Seal(tt.plaintext, tt.aad)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(again, sealed) {
				t.Error("two Seals of the same plaintext are equal; nonce is not random")
			}
		})
	}
}

func TestOpenFails(t *testing.T) {
	t.Parallel()
	k, other := mustKEK(t), mustKEK(t)
	plaintext, aad := []byte("the CA private key"), []byte("bulwark-ca-key")
	sealed, err := k.Seal(plaintext, aad)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		b := bytes.Clone(sealed)
		b[i] ^= 0x01
		return b
	}
	tests := []struct {
		name    string
		key     KEK
		sealed  []byte
		aad     []byte
		wantErr string
	}{
		{"wrong key", other, sealed, aad, "authentication failed"},
		{"wrong aad", k, sealed, []byte("bulwark-tuf-key"), "authentication failed"},
		{"missing aad", k, sealed, nil, "authentication failed"},
		{"version byte", k, flip(0), aad, "unsupported format version 0"},
		{"nonce", k, flip(1), aad, "authentication failed"},
		{"ciphertext", k, flip(13), aad, "authentication failed"},
		{"tag", k, flip(len(sealed) - 1), aad, "authentication failed"},
		{"truncated", k, sealed[:sealOverhead-1], aad, "truncated"},
		{"tag cut off", k, sealed[:len(sealed)-1], aad, "authentication failed"},
		{"empty", k, nil, aad, "empty"},
		{"zero KEK", KEK{}, sealed, aad, "KEK is not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.key.Open(tt.sealed, tt.aad)
			if err == nil {
				t.Fatalf("Open succeeded, returned %q", got)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
		})
	}
	if _, err := (KEK{}).Seal(plaintext, aad); err == nil {
		t.Error("Seal with the zero KEK succeeded")
	}
}

func TestParseKEK(t *testing.T) {
	t.Parallel()
	valid := strings.Repeat("0123456789abcdef", 4)
	tests := []struct {
		in      string
		wantErr string // "" means success
	}{
		{valid, ""},
		{strings.ToUpper(valid), ""},
		{" " + valid + "\n", ""},
		{"", "64 hexadecimal characters, got 0"},
		{valid[:62], "got 62"},
		{valid + "00", "got 66"},
		{valid[:63] + "g", "not hexadecimal"},
		{strings.Repeat("0", 64), "all zeros"},
	}
	for _, tt := range tests {
		k, err := ParseKEK(tt.in)
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("ParseKEK(%q): %v", tt.in, err)
			} else if got := hex.EncodeToString(k.key[:]); got != valid {
				t.Errorf("ParseKEK(%q) = %s, want %s", tt.in, got, valid)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("ParseKEK(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
		}
		if err != nil && len(tt.in) > 8 && strings.Contains(err.Error(), strings.TrimSpace(tt.in)) {
			t.Errorf("ParseKEK error %q reveals the input", err)
		}
	}
}

func TestKEKNeverPrinted(t *testing.T) {
	t.Parallel()
	k, err := ParseKEK(strings.Repeat("ab", 32))
	if err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		if s := fmt.Sprintf(verb, k); strings.Contains(strings.ToLower(s), "abab") || strings.Contains(s, "171, 171") {
			t.Errorf("Sprintf(%q, kek) = %q reveals the key", verb, s)
		}
	}
}

func TestLoadOrCreateKEKFile(t *testing.T) {
	t.Setenv(envKEK, "")
	t.Setenv(envKEKFile, "")
	dir := filepath.Join(t.TempDir(), "data") // does not exist yet
	k1, err := LoadOrCreateKEK(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "kek")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("created KEK file mode = %#o, want 0600", got)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(string(b)), hex.EncodeToString(k1.key[:]); got != want {
		t.Errorf("KEK file holds %q, want the hex key", got)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("data directory holds %d entries, want only the kek file", len(entries))
	}

	k2, err := LoadOrCreateKEK(dir)
	if err != nil {
		t.Fatal(err)
	}
	if k1 != k2 {
		t.Error("second LoadOrCreateKEK returned a different key")
	}
	if k1.isZero() {
		t.Error("created KEK is zero")
	}

	if runtime.GOOS == "windows" {
		return
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := LoadOrCreateKEK(dir)
		if err == nil {
			t.Fatalf("LoadOrCreateKEK accepted a KEK file with mode %#o", mode)
		}
		for _, want := range []string{path, "chmod 600"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("mode %#o: error %q does not contain %q", mode, err, want)
			}
		}
	}
	if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	if k3, err := LoadOrCreateKEK(dir); err != nil || k3 != k1 {
		t.Errorf("read-only 0400 KEK file: got err %v, same key %v", err, k3 == k1)
	}
}

func TestLoadOrCreateKEKPrecedence(t *testing.T) {
	hexKey := func(b byte) string { return strings.Repeat(fmt.Sprintf("%02x", b), 32) }
	writeFile := func(t *testing.T, path, content string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil { // umask
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		env     string // BULWARK_KEK
		envFile string // content of the file BULWARK_KEK_FILE names; "-" for a missing file, "" to leave unset
		dataDir string // content of <dataDir>/kek; "" for none
		want    byte   // every byte of the expected key; 0 with wantErr
		wantErr string
	}{
		{name: "env wins", env: hexKey(1), envFile: hexKey(2) + "\n", dataDir: hexKey(3), want: 1},
		{name: "env file beats data dir", envFile: hexKey(2) + "\n", dataDir: hexKey(3), want: 2},
		{name: "data dir", dataDir: hexKey(3) + "\n", want: 3},
		{name: "bad env is an error, not a fallback", env: "nothex", dataDir: hexKey(3), wantErr: "BULWARK_KEK: pki: KEK must be 64"},
		{name: "missing env file is an error, not a fallback", envFile: "-", dataDir: hexKey(3), wantErr: "BULWARK_KEK_FILE"},
		{name: "bad env file", envFile: "short", wantErr: "got 5 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Setenv(envKEK, tt.env)
			t.Setenv(envKEKFile, "")
			if tt.envFile != "" {
				p := filepath.Join(t.TempDir(), "kek.hex")
				if tt.envFile != "-" {
					writeFile(t, p, tt.envFile, 0o600)
				}
				t.Setenv(envKEKFile, p)
			}
			if tt.dataDir != "" {
				writeFile(t, filepath.Join(dir, "kek"), tt.dataDir, 0o600)
			}
			k, err := LoadOrCreateKEK(dir)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := hexKey(tt.want); hex.EncodeToString(k.key[:]) != want {
				t.Errorf("got key %x..., want %s...", k.key[:2], want[:4])
			}
		})
	}

	t.Run("env file mode is checked", func(t *testing.T) {
		if runtime.GOOS == "windows" {
			t.Skip("no Unix permissions")
		}
		t.Setenv(envKEK, "")
		p := filepath.Join(t.TempDir(), "kek.hex")
		writeFile(t, p, hexKey(2), 0o644)
		t.Setenv(envKEKFile, p)
		if _, err := LoadOrCreateKEK(t.TempDir()); err == nil || !strings.Contains(err.Error(), "chmod 600 "+p) {
			t.Errorf("error = %v, want a chmod 600 hint naming %s", err, p)
		}
	})
}

func TestLoadOrCreateKEKConcurrent(t *testing.T) {
	t.Setenv(envKEK, "")
	t.Setenv(envKEKFile, "")
	dir := t.TempDir()
	const n = 8
	keys := make([]KEK, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { keys[i], errs[i] = LoadOrCreateKEK(dir) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if keys[i] != keys[0] {
			t.Fatal("concurrent creators got different keys")
		}
	}
}
