// Package cli is the bulwark-agent command line: enroll, run, status,
// health and version. Run parses arguments and reports every error as one
// line on stderr with a non-zero exit code; status and health are clients
// of the daemon's local API (package localapi). Run keeps no global state
// and may be called concurrently.
package cli

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent"
	"github.com/bulwark-iot/bulwark/internal/agent/localapi"
	"github.com/bulwark-iot/bulwark/internal/agent/state"
	"github.com/bulwark-iot/bulwark/internal/agent/tufclient"
	"github.com/bulwark-iot/bulwark/internal/api"
)

// Exit codes.
const (
	exitOK        = 0
	exitFail      = 1 // the command failed
	exitUsage     = 2 // bad command line
	exitUnhealthy = 3 // health: the device is not healthy (degraded, unhealthy or unknown)
)

const usage = `usage: bulwark-agent <command> [flags]

Commands:
  enroll    enrol this device with a Bulwark server (creates the device key)
  run       run the agent daemon
  status    show the running agent's status
  health    show the device's local health summary
  events    show the device's security events from its journal (--follow, --json)
  version   print the agent version
  tuf-client  the TUF conformance suite's client CLI (init, refresh, download)
  tpm       TPM tools: info (EK hash for zero-touch enrolment), emulate-boot, extend

Every command takes --state DIR (default ` + state.DefaultDir + `).
Run "bulwark-agent <command> -h" for its flags.
`

// Run runs the command line args (without the program name) and returns
// the process exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	c := &cmd{ctx: ctx, stdout: stdout, stderr: stderr, name: args[0]}
	switch args[0] {
	case "enroll":
		return c.enroll(args[1:])
	case "run":
		return c.run(args[1:])
	case "status":
		return c.status(args[1:])
	case "health":
		return c.health(args[1:])
	case "events":
		return c.events(args[1:])
	case "version":
		return c.version(args[1:])
	case "tuf-client":
		return c.tufClient(args[1:])
	case "tpm":
		return c.tpmCmd(args[1:])
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "bulwark-agent: unknown command %q (run bulwark-agent help)\n", args[0])
	return exitUsage
}

type cmd struct {
	ctx            context.Context
	stdout, stderr io.Writer
	name           string
}

// errorf prints one error line and returns code.
func (c *cmd) errorf(code int, format string, args ...any) int {
	msg := fmt.Sprintf(format, args...)
	msg = strings.Join(strings.Fields(msg), " ") // one line, always
	fmt.Fprintf(c.stderr, "bulwark-agent %s: %s\n", c.name, msg)
	return code
}

// flags returns the command's flag set with --state registered.
func (c *cmd) flags(synopsis string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("bulwark-agent "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(c.stdout, "usage: bulwark-agent %s %s\n\nFlags:\n", c.name, synopsis)
		fs.SetOutput(c.stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	dir := fs.String("state", state.DefaultDir, "state `DIR` holding the device identity and the agent socket")
	return fs, dir
}

// parse parses args; ok is false when the command must return code.
func (c *cmd) parse(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.Usage()
			return exitOK, false
		}
		return c.errorf(exitUsage, "%v (see bulwark-agent %s -h)", err, c.name), false
	}
	if fs.NArg() > 0 {
		return c.errorf(exitUsage, "unexpected argument %q (see bulwark-agent %s -h)", fs.Arg(0), c.name), false
	}
	return 0, true
}

func (c *cmd) enroll(args []string) int {
	fs, dir := c.flags("--server URL --token TOKEN --ca-cert FILE [--state DIR] [--force]")
	server := fs.String("server", "", "server base `URL` (https://...); required")
	token := fs.String("token", "", "enrolment `TOKEN` from the administrator; required unless --token-file is given")
	tokenFile := fs.String("token-file", "", "read the enrolment token from `FILE` (keeps it out of the process list)")
	caFile := fs.String("ca-cert", "", "PEM `FILE` with the CA that signed the server certificate; required, kept as the trust anchor")
	force := fs.Bool("force", false, "enrol again even if already enrolled (keeps the device ID when the old key is present)")
	tpmSpec := fs.String("tpm", "auto", "where the device key lives: `auto` (/dev/tpmrm0 when present), none (a software key), a TPM device path, or swtpm:HOST:PORT")
	platformRoot := fs.String("platform-root", "", "`DIR` prepended to the boot event log, IMA list and SecureBoot paths (an emulated boot for a software TPM)")
	if code, ok := c.parse(fs, args); !ok {
		return code
	}
	tpmResolved, err := agent.ResolveTPM(*tpmSpec)
	if err != nil {
		return c.errorf(exitUsage, "%v", err)
	}
	switch {
	case *server == "":
		return c.errorf(exitUsage, "--server is required")
	case *token == "" && *tokenFile == "" && tpmResolved == "":
		return c.errorf(exitUsage, "--token or --token-file is required (without a TPM there is no zero-touch enrolment)")
	case *token != "" && *tokenFile != "":
		return c.errorf(exitUsage, "give --token or --token-file, not both")
	case *caFile == "":
		return c.errorf(exitUsage, "--ca-cert is required")
	}
	if *tokenFile != "" {
		b, err := readSmall(*tokenFile)
		if err != nil {
			return c.errorf(exitFail, "reading --token-file: %v", err)
		}
		*token = strings.TrimSpace(string(b))
		if *token == "" {
			return c.errorf(exitFail, "--token-file %s is empty", *tokenFile)
		}
	}
	caPEM, err := readSmall(*caFile)
	if err != nil {
		return c.errorf(exitFail, "reading --ca-cert: %v", err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(caPEM) {
		return c.errorf(exitFail, "--ca-cert %s holds no PEM certificate", *caFile)
	}
	ctx, cancel := context.WithTimeout(c.ctx, 2*time.Minute)
	defer cancel()
	st, err := agent.Enroll(ctx, agent.EnrollOptions{
		StateDir: *dir, Server: *server, Token: *token, CAPEM: caPEM, Force: *force, TPM: *tpmSpec, PlatformRoot: *platformRoot,
		Warn: func(msg string) { fmt.Fprintln(c.stderr, "bulwark-agent: warning: "+msg) },
		Info: func(msg string) { fmt.Fprintln(c.stderr, "bulwark-agent: "+msg) },
	})
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "enroll: ")
		if strings.Contains(msg, "(401 invalid_token)") {
			msg = "the server refused the enrolment token: " + msg
		}
		return c.errorf(exitFail, "%s", msg)
	}
	fmt.Fprintln(c.stdout, st.DeviceID)
	key := "a software key (lower assurance: no TPM)"
	if st.TPM != "" {
		key = "its key in the TPM " + st.TPM + " (hardware-bound, proven by credential activation)"
	}
	fmt.Fprintf(c.stderr, "enrolled as device %s with %s, %s; state in %s\nstart the agent with: bulwark-agent run --state %s\n",
		st.DeviceID, st.Server, key, *dir, *dir)
	return exitOK
}

// readSmall reads a file of at most 1 MiB.
func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1<<20+1))
	if err != nil {
		return nil, err
	}
	if len(b) > 1<<20 {
		return nil, fmt.Errorf("%s is larger than 1 MiB", path)
	}
	return b, nil
}

func (c *cmd) run(args []string) int {
	fs, dir := c.flags("[--state DIR] [--interval D] [--log-level LEVEL] [--install-root DIR] [--health-check CMD] [--hardware MODEL]")
	interval := fs.Duration("interval", 0, "check-in `interval` (e.g. 30s); 0 means the interval the server asks for")
	installRoot := fs.String("install-root", "", "`DIR` holding one directory per installed product; empty means <state>/apps")
	hardware := fs.String("hardware", "", "this device's hardware `model`; releases published for other hardware are refused")
	healthCheck := fs.String("health-check", "", "`command` run after an update switches versions (split on spaces, no shell); non-zero exit rolls back")
	level := fs.String("log-level", "info", "log `level`: debug, info, warn or error")
	eventRate := fs.Float64("event-rate", 0, "most security events forwarded per `second` (paces a backlog after an outage); 0 means 2000")
	clockThreshold := fs.Duration("clock-threshold", 0, "clock offset from the server past which a clock.offset event is recorded; 0 means 5s")
	tpmSpec := fs.String("tpm", "", "the TPM holding the device key when it is not the one recorded at enrolment: `auto`, a device path, swtpm:HOST:PORT, or none")
	var integrityPaths, managedBinaries listFlag
	fs.Var(&integrityPaths, "integrity-path", "a file or directory the integrity monitor hashes where the kernel has no IMA (repeatable)")
	fs.Var(&managedBinaries, "managed-binary", "an ELF `FILE` whose hardening (PIE, RELRO, NX stack) is reported besides the agent's (repeatable)")
	platformRoot := fs.String("platform-root", "", "`DIR` prepended to the boot event log, IMA list and SecureBoot paths (an emulated boot for a software TPM)")
	netLog := fs.String("net-log", "on", "log new network connections as net.connection events: `on` or off (docs/collectors.md)")
	dnsLog := fs.String("dns-log", "on", "log the DNS queries sent over UDP, with their answers, as dns.query events: `on` or off (needs root or CAP_NET_RAW; docs/collectors.md)")
	authLog := fs.String("auth-log", "auto", "read authentication events (auth.login) from `SOURCE`: auto (journald if it runs, else /var/log/auth.log or /var/log/secure), journald, a syslog file path, or off")
	iocOn := fs.String("ioc", "on", "fetch the fleet's indicators of compromise and flag matching events as ioc.match: `on` or off (docs/ioc.md)")
	iocInterval := fs.Duration("ioc-interval", 0, "how often the indicator set is fetched; 0 means 5m")
	iocBlock := fs.String("ioc-block", "on", "drop traffic to and from IP and CIDR indicators when the server's policy is block: `on` or off (flag only)")
	iocNFT := fs.String("ioc-nft", "nft", "the nft `command` that installs the block rules (split on spaces, no shell), e.g. \"ip netns exec NS nft\"")
	if code, ok := c.parse(fs, args); !ok {
		return code
	}
	if (*iocOn != "on" && *iocOn != "off") || (*iocBlock != "on" && *iocBlock != "off") {
		return c.errorf(exitUsage, "--ioc and --ioc-block must be on or off")
	}
	if *iocInterval < 0 || (*iocInterval > 0 && *iocInterval < 10*time.Second) || len(strings.Fields(*iocNFT)) == 0 {
		return c.errorf(exitUsage, "--ioc-interval must be 0 (5m) or at least 10s, and --ioc-nft a command")
	}
	if *netLog != "on" && *netLog != "off" {
		return c.errorf(exitUsage, "--net-log must be on or off, not %q", *netLog)
	}
	if *dnsLog != "on" && *dnsLog != "off" {
		return c.errorf(exitUsage, "--dns-log must be on or off, not %q", *dnsLog)
	}
	if *authLog == "" {
		return c.errorf(exitUsage, "--auth-log must be auto, journald, off or a file path")
	}
	collectors := agent.CollectorsConfig{NetOff: *netLog == "off", DNSOff: *dnsLog == "off", AuthLog: *authLog}
	if *authLog == "auto" {
		collectors.AuthLog = ""
	}
	if *interval < 0 || (*interval > 0 && *interval < time.Second) {
		return c.errorf(exitUsage, "--interval must be 0 (server's choice) or at least 1s, not %v", *interval)
	}
	if *eventRate < 0 || *clockThreshold < 0 {
		return c.errorf(exitUsage, "--event-rate and --clock-threshold must not be negative")
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return c.errorf(exitUsage, "--log-level must be debug, info, warn or error, not %q", *level)
	}
	logger := slog.New(slog.NewJSONHandler(c.stderr, &slog.HandlerOptions{Level: lv}))
	err := agent.Run(c.ctx, agent.Config{StateDir: *dir, Interval: *interval, InstallRoot: *installRoot, HealthCheck: strings.Fields(*healthCheck), Hardware: *hardware,
		TPM: *tpmSpec, PlatformRoot: *platformRoot, Events: agent.EventsConfig{Rate: *eventRate, ClockThreshold: *clockThreshold},
		Collectors: collectors, IoC: agent.IoCConfig{Off: *iocOn == "off", Interval: *iocInterval, BlockOff: *iocBlock == "off", NFT: strings.Fields(*iocNFT)}}, logger)
	if err != nil {
		return c.errorf(exitFail, "%v", err)
	}
	return exitOK
}

func (c *cmd) status(args []string) int {
	fs, dir := c.flags("[--json] [--state DIR]")
	asJSON := fs.Bool("json", false, "print JSON")
	if code, ok := c.parse(fs, args); !ok {
		return code
	}
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	st, err := localapi.NewClient(filepath.Join(*dir, state.SocketFile)).Status(ctx)
	if err != nil && !errors.Is(err, localapi.ErrNotRunning) {
		return c.errorf(exitFail, "%v", err)
	}
	code := exitOK
	if err != nil {
		st = offlineStatus(*dir)
		code = c.errorf(exitFail, "%v", err)
	}
	if *asJSON {
		writeJSON(c.stdout, st)
		return code
	}
	printStatus(c.stdout, st, time.Now())
	return code
}

// offlineStatus describes the enrolment from the state files alone.
func offlineStatus(dir string) *localapi.Status {
	st := &localapi.Status{AgentVersion: agent.Version()}
	rec, err := state.Load(dir)
	if err != nil {
		return st
	}
	st.Enrolled = true
	st.DeviceID, st.Server, st.KeyAssurance = rec.DeviceID, rec.Server, rec.KeyAssurance
	if !rec.EnrolledAt.IsZero() {
		st.EnrolledAt = &rec.EnrolledAt
	}
	if b, err := readSmall(filepath.Join(dir, state.CertFile)); err == nil {
		if p, _ := pem.Decode(b); p != nil {
			if cert, err := x509.ParseCertificate(p.Bytes); err == nil {
				st.CertificateSerial = cert.SerialNumber.Text(16)
				st.CertificateNotAfter = &cert.NotAfter
			}
		}
	}
	return st
}

func printStatus(w io.Writer, st *localapi.Status, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	defer tw.Flush()
	line := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	ts := func(t *time.Time) string {
		if t == nil {
			return "never"
		}
		return t.Local().Format(time.RFC3339)
	}
	if st.DaemonRunning {
		line("Daemon", fmt.Sprintf("running (pid %d, since %s)", st.PID, ts(st.StartedAt)))
	} else {
		line("Daemon", "not running")
	}
	line("Agent version", st.AgentVersion)
	if !st.Enrolled {
		line("Enrolled", "no")
		return
	}
	line("Enrolled", "yes, "+ts(st.EnrolledAt))
	line("Device ID", st.DeviceID)
	line("Server", st.Server)
	if st.KeyAssurance != "" {
		line("Key assurance", st.KeyAssurance)
	}
	if st.CertificateNotAfter != nil {
		left := st.CertificateNotAfter.Sub(now).Round(time.Minute)
		if left > 0 {
			line("Certificate", fmt.Sprintf("expires %s (in %s)", ts(st.CertificateNotAfter), left))
		} else {
			line("Certificate", fmt.Sprintf("EXPIRED %s", ts(st.CertificateNotAfter)))
		}
	}
	if !st.DaemonRunning {
		return
	}
	last := ts(st.LastCheckin)
	if st.LastCheckinResult != "" {
		last += " (" + st.LastCheckinResult + ")"
	}
	line("Last check-in", last)
	line("Last success", ts(st.LastCheckinSuccess))
	if st.LastError != "" {
		line("Last error", st.LastError+" ("+ts(st.LastErrorAt)+")")
	}
	line("Pending acks", fmt.Sprint(st.PendingAcks))
	if st.IoC != nil {
		v := fmt.Sprintf("%d indicators", st.IoC.Indicators)
		if st.IoC.Version != "" {
			v += ", version " + st.IoC.Version
		}
		if st.IoC.Action != "" {
			v += ", action " + st.IoC.Action
		}
		line("IoC set", v+", blocking "+st.IoC.Blocking)
	}
	line("Revoked", map[bool]string{true: "YES: the server has revoked this device", false: "no"}[st.Revoked])
	if st.Health != nil {
		line("Health", st.Health.Status)
		for _, ch := range st.Health.Checks {
			fmt.Fprintf(tw, "  %s\t%s: %s\n", ch.Name, ch.Status, ch.Detail)
		}
	}
}

func (c *cmd) health(args []string) int {
	fs, dir := c.flags("[--json] [--state DIR]")
	asJSON := fs.Bool("json", false, "print JSON")
	fs.Usage = wrapUsage(fs.Usage, c.stdout, "\nExit status: 0 healthy, 3 degraded, unhealthy or unknown, 1 daemon unreachable.\n")
	if code, ok := c.parse(fs, args); !ok {
		return code
	}
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	h, err := localapi.NewClient(filepath.Join(*dir, state.SocketFile)).Health(ctx)
	if err != nil {
		return c.errorf(exitFail, "%v", err)
	}
	if *asJSON {
		writeJSON(c.stdout, h)
	} else {
		printHealth(c.stdout, h)
	}
	if h.Status != api.HealthHealthy {
		return exitUnhealthy
	}
	return exitOK
}

func wrapUsage(u func(), w io.Writer, extra string) func() {
	return func() { u(); fmt.Fprint(w, extra) }
}

func printHealth(w io.Writer, h *api.Health) {
	fmt.Fprintf(w, "Health: %s\n", h.Status)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, ch := range h.Checks {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", ch.Name, ch.Status, ch.Detail)
	}
	tw.Flush()
}

func (c *cmd) version(args []string) int {
	fs := flag.NewFlagSet("bulwark-agent version", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() { fmt.Fprintln(c.stdout, "usage: bulwark-agent version") }
	if code, ok := c.parse(fs, args); !ok {
		return code
	}
	fmt.Fprintf(c.stdout, "bulwark-agent %s (%s %s/%s)\n", agent.Version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return exitOK
}

func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// tufClient runs the TUF conformance suite's client CLI protocol with the
// agent's verification code (package tufclient).
func (c *cmd) tufClient(args []string) int {
	return tufclient.Main(c.ctx, args, c.stdout, c.stderr)
}
