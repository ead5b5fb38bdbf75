package update

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent/state"
)

// JournalFile is the name of the journal in the updater's root.
const JournalFile = "update.json"

// DefaultHealthTimeout bounds the health check when Config sets none.
const DefaultHealthTimeout = 2 * time.Minute

// Phase is a step of an update, as recorded in the journal.
type Phase string

// The phases, in order. Committed, RolledBack and Failed are final.
const (
	PhaseDownloading Phase = "downloading"
	PhaseVerifying   Phase = "verifying"
	PhaseInstalling  Phase = "installing"
	PhaseSwitching   Phase = "switching"
	PhaseHealthCheck Phase = "health-check"
	PhaseCommitted   Phase = "committed"
	PhaseRollingBack Phase = "rolling-back"
	PhaseRolledBack  Phase = "rolled-back"
	// PhaseFailed: the update stopped before anything was switched; the
	// old version never stopped being active.
	PhaseFailed Phase = "failed"
)

// Final reports whether p ends an update.
func (p Phase) Final() bool {
	return p == PhaseCommitted || p == PhaseRolledBack || p == PhaseFailed
}

// Journal is the persisted state of the last update, kept in
// <root>/update.json.
type Journal struct {
	Phase   Phase  `json:"phase"`
	Product string `json:"product,omitempty"`
	From    string `json:"from,omitempty"` // active version before the update; "" for a first install
	To      string `json:"to"`
	// Reason says why the update failed or was rolled back.
	Reason  string    `json:"reason,omitempty"`
	Updated time.Time `json:"updated"`
}

// Outcome summarises how an update ended.
type Outcome string

// Outcomes of Update and Resume.
const (
	OutcomeInstalled  Outcome = "installed"   // the new version is active and committed
	OutcomeUnchanged  Outcome = "unchanged"   // the release was already active
	OutcomeFailed     Outcome = "failed"      // stopped before switching; the old version is active
	OutcomeRolledBack Outcome = "rolled-back" // switched, then switched back; the old version is active
)

// Report tells the caller (and, through check-in, the server) what
// happened and why.
type Report struct {
	Product string  `json:"product,omitempty"`
	From    string  `json:"from,omitempty"`
	To      string  `json:"to"`
	Outcome Outcome `json:"outcome"`
	// Phase is the phase that failed, for failed and rolled-back updates.
	Phase  Phase  `json:"phase,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Health is the health check's result when one ran.
	Health *HealthResult `json:"health,omitempty"`
}

// HealthResult is the outcome of the health check command.
type HealthResult struct {
	OK       bool          `json:"ok"`
	ExitCode int           `json:"exit_code"`        // -1 when it did not exit normally
	Output   string        `json:"output,omitempty"` // the last 4 KiB of stdout and stderr
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}

// Config configures an Updater.
type Config struct {
	// Root holds the journal. Required. The directory installer may use
	// the same directory.
	Root string
	// Installer installs releases. Required.
	Installer Installer
	// Client downloads artifacts; nil means http.DefaultClient.
	Client *http.Client
	// DownloadDir keeps artifacts while they download; empty means
	// <Root>/downloads. An artifact is deleted once installed.
	DownloadDir string
	// Progress, if set, reports download progress (see Downloader).
	Progress func(done, total int64)
	// HealthCheck is the command (argv, no shell) run after the switch;
	// exit status 0 means healthy. It gets BULWARK_UPDATE_FROM,
	// BULWARK_UPDATE_TO and BULWARK_UPDATE_PRODUCT in its environment.
	// Empty means no check: the switch alone commits.
	HealthCheck []string
	// HealthTimeout bounds the health check; zero means
	// DefaultHealthTimeout. A check that runs longer has failed.
	HealthTimeout time.Duration
	// Reachable, if set, runs after the health check command passes: the
	// device must still reach its server (the agent checks in) for the
	// update to be kept. An error rolls back like a failed health check.
	Reachable func(ctx context.Context) error

	// hook, when set by tests, is called at named points.
	hook func(point string)
}

// Updater runs updates through an Installer and keeps the journal. Its
// methods are safe for concurrent use; they run one at a time.
type Updater struct {
	cfg Config
	mu  sync.Mutex
}

// New returns an Updater for cfg. Call Resume before the first Update
// after start-up (Update also does).
func New(cfg Config) (*Updater, error) {
	if cfg.Root == "" || cfg.Installer == nil {
		return nil, errors.New("update: Root and Installer are required")
	}
	if cfg.DownloadDir == "" {
		cfg.DownloadDir = filepath.Join(cfg.Root, "downloads")
	}
	if cfg.HealthTimeout <= 0 {
		cfg.HealthTimeout = DefaultHealthTimeout
	}
	if err := os.MkdirAll(cfg.Root, 0o755); err != nil {
		return nil, fmt.Errorf("update: %w", err)
	}
	return &Updater{cfg: cfg}, nil
}

func (u *Updater) at(point string) {
	if u.cfg.hook != nil {
		u.cfg.hook(point)
	}
}

// Journal returns the journal of the last update, or nil when there has
// been none.
func (u *Updater) Journal() (*Journal, error) {
	data, err := os.ReadFile(filepath.Join(u.cfg.Root, JournalFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading update journal: %w", err)
	}
	if len(data) > 64<<10 {
		return nil, errors.New("reading update journal: larger than 64 KiB")
	}
	var j Journal
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return nil, fmt.Errorf("reading update journal: %w", err)
	}
	switch j.Phase {
	case PhaseDownloading, PhaseVerifying, PhaseInstalling, PhaseSwitching, PhaseHealthCheck,
		PhaseCommitted, PhaseRollingBack, PhaseRolledBack, PhaseFailed:
	default:
		return nil, fmt.Errorf("reading update journal: unknown phase %q", j.Phase)
	}
	return &j, nil
}

// record moves the journal to phase p; it returns once that is durable.
func (u *Updater) record(j *Journal, p Phase, reason string) error {
	j.Phase, j.Reason, j.Updated = p, reason, time.Now().UTC()
	data, _ := json.MarshalIndent(j, "", "  ")
	if err := state.WriteFile(filepath.Join(u.cfg.Root, JournalFile), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("update journal: %w", err)
	}
	return nil
}

// Update installs release r from url, whose trusted length and hashes are
// want. It first resumes any interrupted update. It returns a report in
// every case where it got as far as deciding something; the error is
// non-nil when the release did not end up installed (ErrDowngrade, the
// download errors, ErrUnsafeArchive, a failed health check, ...).
func (u *Updater) Update(ctx context.Context, url string, want Target, r Release) (*Report, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, err := u.resume(ctx); err != nil {
		return nil, err
	}
	inst := u.cfg.Installer
	from, err := inst.Current(ctx)
	if err != nil {
		return nil, fmt.Errorf("update: %w", err)
	}
	j := &Journal{Product: r.Product, From: from, To: r.Version}
	failed := func(p Phase, err error) (*Report, error) {
		err = fmt.Errorf("update to %s: %s: %w", r.Version, p, err)
		if rerr := u.record(j, PhaseFailed, err.Error()); rerr != nil {
			return nil, errors.Join(err, rerr)
		}
		return &Report{Product: r.Product, From: from, To: r.Version, Outcome: OutcomeFailed, Phase: p, Reason: err.Error()}, err
	}
	same, err := checkVersion(from, r)
	if err != nil {
		return failed(PhaseVerifying, err)
	}
	if same {
		return &Report{Product: r.Product, From: from, To: r.Version, Outcome: OutcomeUnchanged}, nil
	}

	if err := u.record(j, PhaseDownloading, ""); err != nil {
		return nil, err
	}
	d := &Downloader{Client: u.cfg.Client, Progress: u.cfg.Progress}
	artifact, err := d.Download(ctx, url, want, u.cfg.DownloadDir)
	if err != nil {
		return failed(PhaseDownloading, err)
	}
	u.at("downloaded")

	if err := u.record(j, PhaseVerifying, ""); err != nil {
		return nil, err
	}
	// Download verified length and hashes while streaming; check that the
	// file on disk is still the one verified before unpacking it.
	if fi, err := os.Stat(artifact); err != nil {
		return failed(PhaseVerifying, err)
	} else if fi.Size() != want.Length {
		return failed(PhaseVerifying, fmt.Errorf("%w: %s has %d bytes", ErrLengthMismatch, artifact, fi.Size()))
	}

	if err := u.record(j, PhaseInstalling, ""); err != nil {
		return nil, err
	}
	if err := inst.Install(ctx, artifact, r); err != nil {
		if rerr := inst.Recover(ctx); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return failed(PhaseInstalling, err)
	}
	os.Remove(artifact) // unpacked; a retry would download it again

	if err := u.record(j, PhaseSwitching, ""); err != nil {
		return nil, err
	}
	return u.switchAndCheck(ctx, j)
}

// switchAndCheck activates j.To, runs the health check, and commits or
// rolls back.
func (u *Updater) switchAndCheck(ctx context.Context, j *Journal) (*Report, error) {
	inst := u.cfg.Installer
	if err := inst.Switch(ctx, j.To); err != nil {
		return u.rollback(ctx, j, PhaseSwitching, fmt.Sprintf("switching to %s: %v", j.To, err), nil)
	}
	if err := u.record(j, PhaseHealthCheck, ""); err != nil {
		return nil, err
	}
	u.at("switched")
	health := u.healthCheck(ctx, j)
	if health != nil && !health.OK {
		reason := "health check failed: " + health.Error
		return u.rollback(ctx, j, PhaseHealthCheck, reason, health)
	}
	if u.cfg.Reachable != nil {
		rctx, cancel := context.WithTimeout(ctx, u.cfg.HealthTimeout)
		err := u.cfg.Reachable(rctx)
		cancel()
		if err != nil {
			return u.rollback(ctx, j, PhaseHealthCheck, "the device could not reach its server after the switch: "+err.Error(), health)
		}
	}
	// Commit the installer first: a crash before the journal says
	// committed rolls back to From, which Commit keeps.
	if err := inst.Commit(ctx, j.From); err != nil {
		return u.rollback(ctx, j, PhaseHealthCheck, fmt.Sprintf("committing %s: %v", j.To, err), health)
	}
	u.at("healthy")
	if err := u.record(j, PhaseCommitted, ""); err != nil {
		return nil, err
	}
	return &Report{Product: j.Product, From: j.From, To: j.To, Outcome: OutcomeInstalled, Health: health}, nil
}

// rollback switches back to j.From and discards j.To. It is idempotent,
// so Resume can repeat it after a crash.
func (u *Updater) rollback(ctx context.Context, j *Journal, failedIn Phase, reason string, health *HealthResult) (*Report, error) {
	if err := u.record(j, PhaseRollingBack, reason); err != nil {
		return nil, err
	}
	u.at("rolling-back")
	inst := u.cfg.Installer
	if err := inst.Recover(ctx); err != nil {
		return nil, fmt.Errorf("update: rolling back: %w", err)
	}
	if err := inst.Switch(ctx, j.From); err != nil {
		return nil, fmt.Errorf("update: rolling back to %q: %w", j.From, err)
	}
	if err := inst.Commit(ctx, ""); err != nil {
		return nil, fmt.Errorf("update: rolling back to %q: %w", j.From, err)
	}
	if err := u.record(j, PhaseRolledBack, reason); err != nil {
		return nil, err
	}
	rep := &Report{Product: j.Product, From: j.From, To: j.To, Outcome: OutcomeRolledBack, Phase: failedIn, Reason: reason, Health: health}
	return rep, fmt.Errorf("update to %s rolled back: %s", j.To, reason)
}

// Resume finishes or undoes an update interrupted by a crash, as the
// journal describes it, and removes installer leftovers. It returns nil
// and no error when there was nothing to do; otherwise a report of how the
// interrupted update ended (the error is non-nil when it did not end
// installed). The agent calls it at start-up.
func (u *Updater) Resume(ctx context.Context) (*Report, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.resume(ctx)
}

func (u *Updater) resume(ctx context.Context) (*Report, error) {
	inst := u.cfg.Installer
	j, err := u.Journal()
	if err != nil {
		// The journal is written atomically, so this is not a torn write;
		// leave it for someone to look at rather than guess.
		return nil, fmt.Errorf("update: resume: %w", err)
	}
	if j == nil || j.Phase.Final() {
		if err := inst.Recover(ctx); err != nil {
			return nil, fmt.Errorf("update: resume: %w", err)
		}
		return nil, nil
	}
	switch j.Phase {
	case PhaseDownloading, PhaseVerifying, PhaseInstalling:
		// Nothing was switched: the old version is active. Undo; a retry
		// resumes the download from the partial file.
		if err := inst.Recover(ctx); err != nil {
			return nil, fmt.Errorf("update: resume: %w", err)
		}
		interrupted := j.Phase
		reason := fmt.Sprintf("interrupted while %s", interrupted)
		if err := u.record(j, PhaseFailed, reason); err != nil {
			return nil, err
		}
		return &Report{Product: j.Product, From: j.From, To: j.To, Outcome: OutcomeFailed, Phase: interrupted, Reason: reason},
			fmt.Errorf("update to %s %s", j.To, reason)
	case PhaseSwitching:
		// The new version is complete (Install finished before this
		// phase); finish the switch and check it.
		if err := inst.Recover(ctx); err != nil {
			return nil, fmt.Errorf("update: resume: %w", err)
		}
		return u.switchAndCheck(ctx, j)
	case PhaseHealthCheck:
		// The check did not complete (the crash may be the new version's
		// doing), so the new version has not proven itself.
		return u.rollback(ctx, j, PhaseHealthCheck, "interrupted during the health check", nil)
	case PhaseRollingBack:
		return u.rollback(ctx, j, PhaseRollingBack, j.Reason, nil)
	}
	return nil, fmt.Errorf("update: resume: unexpected phase %q", j.Phase)
}

// healthCheck runs the configured command; nil means none is configured.
func (u *Updater) healthCheck(ctx context.Context, j *Journal) *HealthResult {
	if len(u.cfg.HealthCheck) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, u.cfg.HealthTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, u.cfg.HealthCheck[0], u.cfg.HealthCheck[1:]...)
	cmd.Env = append(os.Environ(),
		"BULWARK_UPDATE_FROM="+j.From, "BULWARK_UPDATE_TO="+j.To, "BULWARK_UPDATE_PRODUCT="+j.Product)
	out := &tailBuffer{max: 4 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	res := &HealthResult{OK: err == nil, ExitCode: -1, Duration: time.Since(start), Output: out.String()}
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	switch {
	case err == nil:
	case ctx.Err() == context.DeadlineExceeded:
		res.Error = fmt.Sprintf("%s timed out after %s", u.cfg.HealthCheck[0], u.cfg.HealthTimeout)
	default:
		res.Error = fmt.Sprintf("%s: %v", u.cfg.HealthCheck[0], err)
	}
	return res
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
