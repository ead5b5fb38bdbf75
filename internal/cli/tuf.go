package cli

// `bulwark tuf`: custody of the update repository's keys. Every command
// but sign-root and gen-key runs on the server host with file access to
// the data directory (like `token create --data`) and works on the store
// directly, beside running servers (the repository is safe for several
// writers). sign-root and gen-key run on the offline machine that holds
// the root key and need nothing but the files they are given.

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/pki"
	"github.com/bulwark-iot/bulwark/internal/server"
	"github.com/bulwark-iot/bulwark/internal/store"
	"github.com/bulwark-iot/bulwark/internal/tufrepo"
)

const tufUsage = "tuf needs a subcommand: status, export-root-key, remove-root-key, import-root-key, prepare-root, sign-root, import-root, rotate-key or gen-key"

// maxKeyFile and maxRootFile bound the files the commands read.
const (
	maxKeyFile  = 64 << 10
	maxRootFile = 512 << 10
)

func runTUF(ctx context.Context, sub string, args []string, stdout, stderr io.Writer) error {
	switch sub {
	case "status":
		return tufStatusCmd(ctx, args, stdout, stderr)
	case "export-root-key":
		return tufExportRootKey(ctx, args, stdout, stderr)
	case "remove-root-key":
		return tufRemoveRootKey(ctx, args, stdout, stderr)
	case "import-root-key":
		return tufImportRootKey(ctx, args, stdout, stderr)
	case "prepare-root":
		return tufPrepareRoot(ctx, args, stdout, stderr)
	case "sign-root":
		return tufSignRoot(args, stdout, stderr)
	case "import-root":
		return tufImportRoot(ctx, args, stdout, stderr)
	case "rotate-key":
		return tufRotateKey(ctx, args, stdout, stderr)
	case "gen-key":
		return tufGenKey(args, stdout, stderr)
	case "":
		return &usageError{tufUsage}
	}
	return &usageError{fmt.Sprintf("unknown subcommand %q for tuf (%s)", sub, strings.TrimPrefix(tufUsage, "tuf needs a subcommand: "))}
}

// tufLocal is the repository of a data directory, opened for one command.
type tufLocal struct {
	store *store.Store
	repo  *tufrepo.Repo
	actor string
	cmd   string
}

type dataFlags struct{ data, db string }

func (d *dataFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&d.data, "data", "", "server data directory")
	fs.StringVar(&d.db, "db", "", "store DSN when it is not the one recorded in the data directory")
}

// open opens the store and the repository of the data directory.
func (d *dataFlags) open(ctx context.Context, cmd string) (*tufLocal, error) {
	if d.data == "" {
		return nil, &usageError{"tuf " + cmd + ": --data DIR is required"}
	}
	st, err := server.OpenStore(ctx, d.data, d.db)
	if err != nil {
		return nil, fmt.Errorf("tuf %s: %w", cmd, err)
	}
	// The server's KEK: never create one here (a new KEK would open
	// nothing and be left behind in the data directory).
	if os.Getenv("BULWARK_KEK") == "" && os.Getenv("BULWARK_KEK_FILE") == "" {
		if _, err := os.Stat(filepath.Join(d.data, "kek")); err != nil {
			st.Close()
			return nil, fmt.Errorf("tuf %s: %s/kek does not exist: set BULWARK_KEK or BULWARK_KEK_FILE as for the server", cmd, d.data)
		}
	}
	kek, err := pki.LoadOrCreateKEK(d.data)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("tuf %s: %w", cmd, err)
	}
	repo, err := tufrepo.New(tufrepo.Config{Store: st, KEK: kek, Artifacts: tufrepo.DirArtifacts(filepath.Join(d.data, "artifacts"))})
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("tuf %s: %w", cmd, err)
	}
	actor := "local:unknown"
	if u, err := user.Current(); err == nil {
		actor = "local:" + u.Username
	}
	return &tufLocal{store: st, repo: repo, actor: actor, cmd: cmd}, nil
}

func (l *tufLocal) Close() { l.store.Close() }

// fail wraps an error of the command in one line.
func (l *tufLocal) fail(err error) error {
	if err == nil {
		return nil
	}
	msg := strings.TrimPrefix(err.Error(), "tufrepo: ")
	if errors.Is(err, tufrepo.ErrNotInitialized) {
		msg += " (start the server once to create it)"
	}
	return fmt.Errorf("tuf %s: %s", l.cmd, msg)
}

// audit records a state-changing command, also one that failed (opErr),
// and returns the command's error, or an error when recording failed.
func (l *tufLocal) audit(ctx context.Context, action, target, detail string, opErr error) error {
	outcome := "ok"
	if opErr != nil {
		outcome = "failed: " + strings.TrimPrefix(opErr.Error(), "tufrepo: ")
		if len(outcome) > 300 {
			outcome = outcome[:300] + "…"
		}
	}
	if detail != "" {
		detail += " "
	}
	err := l.store.AppendAudit(ctx, &api.AuditEntry{Time: time.Now(), Actor: l.actor, Action: action, Target: target,
		Detail: detail + "via local data directory", Outcome: outcome})
	if opErr != nil {
		return l.fail(opErr)
	}
	if err != nil {
		return fmt.Errorf("tuf %s: done, but recording the audit entry failed: %w", l.cmd, err)
	}
	return nil
}

// TUF status, as `bulwark tuf status --json` prints it.
type tufStatus struct {
	Roles []tufRoleStatus `json:"roles"`
	// RootKeys is online (the server holds a threshold of root keys and
	// signs roots itself), offline (it holds none) or partial.
	RootKeys       string `json:"root_keys"`
	RootKeysOnline int    `json:"root_keys_online"`
	Targets        int    `json:"targets"`
}

type tufRoleStatus struct {
	Role      string         `json:"role"`
	Version   int64          `json:"version"`
	Expires   time.Time      `json:"expires"`
	Threshold int            `json:"threshold"`
	Keys      []tufKeyStatus `json:"keys"`
}

type tufKeyStatus struct {
	ID     string `json:"id"`
	Scheme string `json:"scheme"`
	// Online: the store holds the private key (sealed with the KEK).
	Online bool `json:"online"`
}

func (l *tufLocal) status(ctx context.Context) (*tufStatus, error) {
	s, err := l.repo.Status(ctx)
	if err != nil {
		return nil, l.fail(err)
	}
	body, err := l.repo.Root(ctx)
	if err != nil {
		return nil, l.fail(err)
	}
	root, err := metadata.Root().FromBytes(body)
	if err != nil {
		return nil, l.fail(err)
	}
	out := &tufStatus{RootKeysOnline: s.RootKeysOnline, Targets: s.Targets}
	switch {
	case s.RootKeysOnline == 0:
		out.RootKeys = "offline"
	case s.RootKeysOnline >= s.RootThreshold:
		out.RootKeys = "online"
	default:
		out.RootKeys = "partial"
	}
	for _, role := range []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP} {
		rl := root.Signed.Roles[role]
		rs := tufRoleStatus{Role: role, Version: s.Version[role], Expires: s.Expires[role].UTC()}
		if rl != nil {
			rs.Threshold = rl.Threshold
			for _, id := range rl.KeyIDs {
				ks := tufKeyStatus{ID: id}
				if k := root.Signed.Keys[id]; k != nil {
					ks.Scheme = k.Scheme
				}
				rec, err := l.store.GetTUFKey(ctx, id)
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					return nil, l.fail(err)
				}
				ks.Online = err == nil && len(rec.Sealed) > 0
				rs.Keys = append(rs.Keys, ks)
			}
		}
		out.Roles = append(out.Roles, rs)
	}
	return out, nil
}

func tufStatusCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("tuf status", stderr)
	var df dataFlags
	df.register(fs)
	jsonOut := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	l, err := df.open(ctx, "status")
	if err != nil {
		return err
	}
	defer l.Close()
	s, err := l.status(ctx)
	if err != nil {
		return err
	}
	if *jsonOut {
		return printJSON(stdout, s)
	}
	tw := table(stdout)
	fmt.Fprintln(tw, "ROLE\tVERSION\tEXPIRES\tTHRESHOLD\tKEY ID\tSCHEME\tPRIVATE KEY")
	for _, r := range s.Roles {
		for i, k := range r.Keys {
			where := "offline"
			if k.Online {
				where = "online (sealed in the store)"
			}
			if i == 0 {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\t%s\n", r.Role, r.Version, r.Expires.Format(time.RFC3339), r.Threshold, shortID(k.ID), k.Scheme, where)
			} else {
				fmt.Fprintf(tw, "\t\t\t\t%s\t%s\t%s\n", shortID(k.ID), k.Scheme, where)
			}
		}
	}
	tw.Flush()
	fmt.Fprintf(stdout, "root keys: %s (%d held by the server); %d targets\n", s.RootKeys, s.RootKeysOnline, s.Targets)
	return nil
}

func shortID(id string) string {
	if len(id) > 16 {
		return id[:16]
	}
	return id
}

func tufExportRootKey(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("tuf export-root-key", stderr)
	var df dataFlags
	df.register(fs)
	out := fs.String("out", "", "file to write the root private key(s) to (PEM, mode 0600; must not exist)")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	if *out == "" {
		return &usageError{"tuf export-root-key: --out FILE is required"}
	}
	l, err := df.open(ctx, "export-root-key")
	if err != nil {
		return err
	}
	defer l.Close()
	pemBytes, err := l.repo.ExportRootKeys(ctx)
	if errors.Is(err, tufrepo.ErrKeyOffline) {
		return fmt.Errorf("tuf export-root-key: the server holds no root key (the root is already offline)")
	}
	if err != nil {
		return l.fail(err)
	}
	ids, err := keyIDsOf(pemBytes)
	if err != nil {
		return l.fail(err)
	}
	if err := writeNewFile(*out, pemBytes, 0o600); err != nil {
		return fmt.Errorf("tuf export-root-key: %w", err)
	}
	if err := l.audit(ctx, "tuf.export_root_key", "tuf:root", fmt.Sprintf("keys=%s file=%s", strings.Join(ids, ","), *out), nil); err != nil {
		os.Remove(*out)
		return err
	}
	fmt.Fprintf(stdout, "exported %d root key(s) to %s: move it to offline custody, then run\n  bulwark tuf remove-root-key --data %s --confirm-exported %s\n", len(ids), *out, df.data, *out)
	return nil
}

func tufRemoveRootKey(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("tuf remove-root-key", stderr)
	var df dataFlags
	df.register(fs)
	confirm := fs.String("confirm-exported", "", "the file export-root-key wrote: it must hold the root keys the server holds")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	if *confirm == "" {
		return &usageError{"tuf remove-root-key: --confirm-exported FILE is required (the file export-root-key wrote)"}
	}
	pemBytes, err := readLimited(*confirm, maxKeyFile)
	if err != nil {
		return fmt.Errorf("tuf remove-root-key: %w", err)
	}
	inFile, err := keyIDsOf(pemBytes)
	if err != nil {
		return fmt.Errorf("tuf remove-root-key: %s: %s", *confirm, strings.TrimPrefix(err.Error(), "tufrepo: "))
	}
	l, err := df.open(ctx, "remove-root-key")
	if err != nil {
		return err
	}
	defer l.Close()
	s, err := l.status(ctx)
	if err != nil {
		return err
	}
	root := s.Roles[0]
	if s.RootKeysOnline == 0 {
		return fmt.Errorf("tuf remove-root-key: the server holds no root key (the root is already offline)")
	}
	n := 0
	for _, k := range root.Keys {
		has := slices.Contains(inFile, k.ID)
		if k.Online && !has {
			return fmt.Errorf("tuf remove-root-key: %s does not hold root key %s, which the server holds: export it first", *confirm, shortID(k.ID))
		}
		if has {
			n++
		}
	}
	if n < root.Threshold {
		return fmt.Errorf("tuf remove-root-key: %s holds %d root key(s) of root version %d, fewer than its threshold %d: no new root could be signed", *confirm, n, root.Version, root.Threshold)
	}
	err = l.repo.RemoveRootKeys(ctx)
	if err := l.audit(ctx, "tuf.remove_root_key", "tuf:root", "keys="+strings.Join(inFile, ","), err); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "removed the root keys from the store: the root is offline. Root changes now go through prepare-root, sign-root and import-root.\n")
	return nil
}

func tufImportRootKey(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("tuf import-root-key", stderr)
	var df dataFlags
	df.register(fs)
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	pemBytes, err := readLimited(pos[0], maxKeyFile)
	if err != nil {
		return fmt.Errorf("tuf import-root-key: %w", err)
	}
	ids, err := keyIDsOf(pemBytes)
	if err != nil {
		return fmt.Errorf("tuf import-root-key: %s: %s", pos[0], strings.TrimPrefix(err.Error(), "tufrepo: "))
	}
	l, err := df.open(ctx, "import-root-key")
	if err != nil {
		return err
	}
	defer l.Close()
	for rest := pemBytes; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "PRIVATE KEY" {
			continue
		}
		if err = l.repo.ImportRootKey(ctx, pem.EncodeToMemory(b)); err != nil {
			break
		}
	}
	if err := l.audit(ctx, "tuf.import_root_key", "tuf:root", "keys="+strings.Join(ids, ","), err); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "imported %d root key(s): the server signs roots itself again (remove them again with remove-root-key)\n", len(ids))
	return nil
}

func tufPrepareRoot(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("tuf prepare-root", stderr)
	var df dataFlags
	df.register(fs)
	out := fs.String("out", "", "file to write the unsigned next root to (must not exist)")
	var rotate, rootKeys multiFlag
	fs.Var(&rotate, "rotate", "targets, snapshot, timestamp or root: give the role new keys (repeatable or comma-separated; root needs --root-key)")
	fs.Var(&rootKeys, "root-key", "PEM public key (Ed25519 or ECDSA P-256) of the new root keys (repeatable): replaces the root keys")
	threshold := fs.Int("root-threshold", 0, "signatures a root needs (default: unchanged)")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	if *out == "" {
		return &usageError{"tuf prepare-root: --out FILE is required"}
	}
	if *threshold < 0 {
		return &usageError{"tuf prepare-root: --root-threshold must be 1 or more"}
	}
	var ch tufrepo.RootChange
	rotateRoot := false
	for _, v := range rotate {
		for _, r := range strings.Split(v, ",") {
			switch r = strings.TrimSpace(r); r {
			case metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP:
				if !slices.Contains(ch.Rotate, r) {
					ch.Rotate = append(ch.Rotate, r)
				}
			case metadata.ROOT:
				rotateRoot = true
			default:
				return &usageError{fmt.Sprintf("tuf prepare-root: --rotate %q: must be targets, snapshot, timestamp or root", r)}
			}
		}
	}
	if rotateRoot && len(rootKeys) == 0 {
		return &usageError{"tuf prepare-root: --rotate root needs --root-key PUBKEY.pem for each new root key (make them on the offline machine with bulwark tuf gen-key)"}
	}
	var ids []string
	for _, f := range rootKeys {
		pub, err := readPublicKey(f)
		if err != nil {
			return fmt.Errorf("tuf prepare-root: %w", err)
		}
		k, _ := metadata.KeyFromPublicKey(pub)
		id, _ := k.ID()
		ids = append(ids, id)
		ch.RootKeys = append(ch.RootKeys, pub)
	}
	ch.RootThreshold = *threshold
	if _, err := os.Lstat(*out); err == nil {
		return fmt.Errorf("tuf prepare-root: %s exists: remove it or choose another --out", *out)
	}
	l, err := df.open(ctx, "prepare-root")
	if err != nil {
		return err
	}
	defer l.Close()
	draft, err := l.repo.PrepareRoot(ctx, ch)
	detail := fmt.Sprintf("rotate=%s root_keys=%s root_threshold=%d", strings.Join(ch.Rotate, ","), strings.Join(ids, ","), *threshold)
	if err != nil {
		return l.audit(ctx, "tuf.prepare_root", "tuf:root", detail, err)
	}
	md, err := metadata.Root().FromBytes(draft)
	if err != nil {
		return l.fail(err)
	}
	if err := writeNewFile(*out, draft, 0o644); err != nil {
		return fmt.Errorf("tuf prepare-root: %w", err)
	}
	if err := l.audit(ctx, "tuf.prepare_root", fmt.Sprintf("tuf:root:%d", md.Signed.Version), detail, nil); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote unsigned root version %d to %s (expires %s).\nOn the offline machine: bulwark tuf sign-root --key ROOT-KEY.pem %s\nThen here: bulwark tuf import-root --data %s %s\n",
		md.Signed.Version, *out, md.Signed.Expires.Format(time.RFC3339), *out, df.data, *out)
	return nil
}

func tufSignRoot(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("tuf sign-root", stderr)
	keyFile := fs.String("key", "", "PEM private key file (every key in it signs)")
	out := fs.String("out", "", "write the signed root here (default: in place)")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	if *keyFile == "" {
		return &usageError{"tuf sign-root: --key FILE is required"}
	}
	file := pos[0]
	body, err := readLimited(file, maxRootFile)
	if err != nil {
		return fmt.Errorf("tuf sign-root: %w", err)
	}
	md, err := metadata.Root().FromBytes(body)
	if err != nil {
		return fmt.Errorf("tuf sign-root: %s is not a TUF root: %v", file, err)
	}
	kb, err := readLimited(*keyFile, maxKeyFile)
	if err != nil {
		return fmt.Errorf("tuf sign-root: %w", err)
	}
	keys, err := tufrepo.ParsePrivateKeys(kb)
	if err != nil {
		return fmt.Errorf("tuf sign-root: %s: %s", *keyFile, strings.TrimPrefix(err.Error(), "tufrepo: "))
	}
	// Show what is being signed: the operator checks it before trusting it.
	fmt.Fprintf(stdout, "root version %d, expires %s, consistent_snapshot %v\n", md.Signed.Version, md.Signed.Expires.UTC().Format(time.RFC3339), md.Signed.ConsistentSnapshot)
	for _, role := range []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP} {
		if rl := md.Signed.Roles[role]; rl != nil {
			var ks []string
			for _, id := range rl.KeyIDs {
				s := shortID(id)
				if k := md.Signed.Keys[id]; k != nil {
					s += " (" + k.Scheme + ")"
				}
				ks = append(ks, s)
			}
			fmt.Fprintf(stdout, "  %-9s threshold %d: %s\n", role, rl.Threshold, strings.Join(ks, ", "))
		}
	}
	for _, k := range keys {
		id, err := keyID(k.Public())
		if err != nil {
			return fmt.Errorf("tuf sign-root: %w", err)
		}
		if body, err = tufrepo.SignRoot(body, k); err != nil {
			return fmt.Errorf("tuf sign-root: %s", strings.TrimPrefix(err.Error(), "tufrepo: "))
		}
		note := "a root key of this version"
		if !slices.Contains(md.Signed.Roles[metadata.ROOT].KeyIDs, id) {
			note = "not a root key of this version: it counts towards the previous root's threshold only"
		}
		fmt.Fprintf(stdout, "signed with key %s (%s)\n", shortID(id), note)
	}
	signed, err := metadata.Root().FromBytes(body)
	if err != nil {
		return fmt.Errorf("tuf sign-root: %w", err)
	}
	if err := signed.VerifyDelegate(metadata.ROOT, signed); err != nil {
		fmt.Fprintf(stdout, "this root's own threshold is not met yet: more root keys must sign it\n")
	} else {
		fmt.Fprintf(stdout, "this root's own threshold is met (import-root also checks the current root's threshold)\n")
	}
	dst := *out
	if dst == "" {
		dst = file
	}
	if err := writeFileReplace(dst, body, 0o644); err != nil {
		return fmt.Errorf("tuf sign-root: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %s\n", dst)
	return nil
}

func tufImportRoot(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("tuf import-root", stderr)
	var df dataFlags
	df.register(fs)
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	body, err := readLimited(pos[0], maxRootFile)
	if err != nil {
		return fmt.Errorf("tuf import-root: %w", err)
	}
	md, err := metadata.Root().FromBytes(body)
	if err != nil {
		return fmt.Errorf("tuf import-root: %s is not a TUF root: %v", pos[0], err)
	}
	l, err := df.open(ctx, "import-root")
	if err != nil {
		return err
	}
	defer l.Close()
	err = l.repo.ImportRoot(ctx, body)
	target := fmt.Sprintf("tuf:root:%d", md.Signed.Version)
	if err := l.audit(ctx, "tuf.import_root", target, fmt.Sprintf("file=%s signatures=%d", pos[0], len(md.Signatures)), err); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "root version %d is live: servers serve it now and devices follow at their next refresh\n", md.Signed.Version)
	return nil
}

func tufRotateKey(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("tuf rotate-key", stderr)
	var df dataFlags
	df.register(fs)
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	role := pos[0]
	if !slices.Contains([]string{metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP, metadata.ROOT}, role) {
		return &usageError{fmt.Sprintf("tuf rotate-key: role %q: must be targets, snapshot, timestamp or root", role)}
	}
	l, err := df.open(ctx, "rotate-key")
	if err != nil {
		return err
	}
	defer l.Close()
	if role == metadata.ROOT {
		err = l.repo.RotateRootKeys(ctx)
	} else {
		err = l.repo.RotateOnlineKey(ctx, role)
	}
	if errors.Is(err, tufrepo.ErrKeyOffline) {
		hint := fmt.Sprintf("prepare-root --rotate %s, sign-root on the offline machine and import-root", role)
		if role == metadata.ROOT {
			hint = "prepare-root --root-key NEW.pub, sign-root with the old and the new keys and import-root"
		}
		err = fmt.Errorf("the root keys are offline, so the server cannot sign the new root: use %s (or bring the root key online with import-root-key)", hint)
	}
	if err := l.audit(ctx, "tuf.rotate_key", "tuf:role:"+role, "", err); err != nil {
		return err
	}
	s, err := l.status(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rotated the %s key(s): root version %d is live\n", role, s.Roles[0].Version)
	return nil
}

func tufGenKey(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("tuf gen-key", stderr)
	out := fs.String("out", "", "private key file to write (PEM, mode 0600; the public key goes to FILE.pub)")
	typ := fs.String("type", "ed25519", "ed25519 or ecdsa-p256")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	if *out == "" {
		return &usageError{"tuf gen-key: --out FILE is required"}
	}
	var priv crypto.Signer
	var err error
	switch *typ {
	case "ed25519":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case "ecdsa-p256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return &usageError{fmt.Sprintf("tuf gen-key: --type %q: must be ed25519 or ecdsa-p256", *typ)}
	}
	if err != nil {
		return fmt.Errorf("tuf gen-key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return fmt.Errorf("tuf gen-key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		return fmt.Errorf("tuf gen-key: %w", err)
	}
	if _, err := os.Lstat(*out + ".pub"); err == nil {
		return fmt.Errorf("tuf gen-key: %s.pub exists: will not overwrite it", *out)
	}
	id, err := keyID(priv.Public())
	if err != nil {
		return fmt.Errorf("tuf gen-key: %w", err)
	}
	if err := writeNewFile(*out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Headers: map[string]string{"TUF-Key-ID": id}, Bytes: der}), 0o600); err != nil {
		return fmt.Errorf("tuf gen-key: %w", err)
	}
	if err := writeNewFile(*out+".pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		return fmt.Errorf("tuf gen-key: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %s key %s to %s (public key: %s.pub)\n", *typ, id, *out, *out)
	return nil
}

// keyID is the TUF key ID of pub (Ed25519 or ECDSA P-256 only).
func keyID(pub crypto.PublicKey) (string, error) {
	switch p := pub.(type) {
	case ed25519.PublicKey:
	case *ecdsa.PublicKey:
		if p.Curve != elliptic.P256() {
			return "", fmt.Errorf("%w: ECDSA keys must use P-256", tufrepo.ErrKeyType)
		}
	default:
		return "", fmt.Errorf("%w: %T", tufrepo.ErrKeyType, pub)
	}
	k, err := metadata.KeyFromPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("%w: %v", tufrepo.ErrKeyType, err)
	}
	return k.ID()
}

// keyIDsOf parses every private key in a PEM file and returns their IDs.
func keyIDsOf(pemBytes []byte) ([]string, error) {
	keys, err := tufrepo.ParsePrivateKeys(pemBytes)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, k := range keys {
		id, err := keyID(k.Public())
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// readPublicKey reads a PEM PUBLIC KEY (PKIX) file holding an Ed25519 or
// ECDSA P-256 key.
func readPublicKey(path string) (crypto.PublicKey, error) {
	b, err := readLimited(path, maxKeyFile)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	switch {
	case blk == nil:
		return nil, fmt.Errorf("%s holds no PEM block (want a PUBLIC KEY, as gen-key writes to FILE.pub)", path)
	case strings.Contains(blk.Type, "PRIVATE"):
		return nil, fmt.Errorf("%s holds a private key: pass the public key only (gen-key writes it to FILE.pub)", path)
	case blk.Type != "PUBLIC KEY":
		return nil, fmt.Errorf("%s holds a PEM %s block, not a PUBLIC KEY", path, blk.Type)
	}
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if _, err := keyID(pub); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return pub, nil
}

// readLimited reads a file of at most max bytes.
func readLimited(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, max)
	}
	return b, nil
}

// writeNewFile writes a file that must not exist yet, synced to disk.
func writeNewFile(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s exists: will not overwrite it", path)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// writeFileReplace replaces path atomically (a temporary file renamed).
func writeFileReplace(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
