// Package cli implements the bulwark command: `bulwark server` runs the
// control plane and every other subcommand is an admin API client (or,
// for `token create --data`, a local break-glass tool on the server host).
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/console"
	"github.com/bulwark-iot/bulwark/internal/disclosure"
	"github.com/bulwark-iot/bulwark/internal/server"
	"github.com/bulwark-iot/bulwark/internal/simulate"
)

// Version is the build version, set with -ldflags.
var Version = "0.1.0-dev"

const usage = `bulwark — control plane and admin CLI for Bulwark

Usage:
  bulwark server --data DIR [--listen HOST:PORT] [--db postgres://…] [--host NAME]…
                 [--alert-webhook URL --alert-webhook-secret-file FILE] [--alert-syslog HOST:PORT [--alert-syslog-ca FILE]]
                 [--alert-smtp HOST:PORT --alert-email-to ADDR… --alert-email-from ADDR]
  bulwark token create --data DIR --role ROLE --name NAME [--group G] [--ttl D]
  bulwark token list | token revoke ID
  bulwark enroll-token create --uses N --ttl DURATION [--group G] [--name NAME]
  bulwark enroll-token list | enroll-token revoke ID
  bulwark devices list [--json] [--q TEXT] [--group G] [--status active|revoked]
  bulwark devices show ID [--json] | devices revoke ID
  bulwark devices command ID --kind ping|checkin | devices commands ID [--json]
  bulwark groups list | groups create NAME [--description TEXT]
  bulwark users list | users create --username NAME --role ROLE [--group G]
  bulwark audit verify [--anchor FILE] | audit list [--json] [--limit N]
  bulwark events list [--device ID] [--group G] [--type T] [--severity S] [--since 24h|RFC3339] [--limit N] [--json]
  bulwark events export [--device ID] [--type T] [--since 24h|RFC3339] [--until T] > events.jsonl
  bulwark ioc import FILE [--name N] [--format stix|misp|list] [--expires 720h] | ioc list [--json]
  bulwark ioc feed add --name N (--taxii URL --collection ID | --misp URL) [--interval 1h] [--expires D]
  bulwark ioc indicators [--source N] [--limit N] [--json] | ioc delete NAME
  bulwark alerts list [--open | --status S] [--device ID] [--limit N] [--json] | alerts ack ID
  bulwark release publish --product P --version V --file F [--installer app|ab]
                  [--fixes CVE-…,…] [--severity low|medium|high|critical] [--sbom FILE] [--hardware H,…]
  bulwark release list [--product P] [--json] | release floor --product P --min-version V | release floors
  bulwark release reference-values PRODUCT VERSION [FILE] [--replace]   signed PCR and file reference values for attestation
  bulwark deploy create --release PRODUCT@VERSION (--group G | --device ID…) [--stages 5,25,100]
                 [--halt-failures 10%] [--expedite] [--allow-downgrade]
  bulwark deploy list | deploy show ID [--json] | deploy pause|resume|abort ID [--reason TEXT]
  bulwark deploy windows --group G [--window mon,tue/01:00-04:00]…
  bulwark tuf status --data DIR [--json] | tuf rotate-key --data DIR targets|snapshot|timestamp|root
  bulwark tuf export-root-key --data DIR --out FILE | tuf remove-root-key --data DIR --confirm-exported FILE
  bulwark tuf prepare-root --data DIR --out FILE [--rotate ROLE]… [--root-key PUB.pem]… [--root-threshold N]
  bulwark tuf sign-root --key FILE [--out FILE] ROOT.json | tuf gen-key --out FILE [--type ed25519|ecdsa-p256]
  bulwark tuf import-root --data DIR ROOT.json | tuf import-root-key --data DIR FILE
  bulwark disclosures list [--state S] [--json] | disclosures show ID [--json]
  bulwark disclosures transition ID --to STATE [--note TEXT] [--advisory ID|URL]
  bulwark products list [--json] | products set --name P --support-until YYYY-MM-DD --cadence TEXT --critical-fix TEXT
  bulwark simulate --devices N --interval D --duration T
  bulwark attest ID [--json] | history ID | approve-baseline ID | trust ID STATE
  bulwark ek register --group G HASH... | ek list
  bulwark version

Admin commands read BULWARK_ADDR (https://host:port), BULWARK_TOKEN (API
token) and BULWARK_CACERT (the server CA, DIR/ca.pem).
`

// usageError is a command-line mistake: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// Run executes the command line args and returns the exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := run(ctx, args, stdout, stderr)
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "bulwark: %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
	var ue *usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return &usageError{"a subcommand is required"}
	}
	cmd, rest := args[0], args[1:]
	sub := ""
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		sub = rest[0]
	}
	// Command groups with their own subcommand dispatch.
	groups := map[string]func(ctx context.Context, sub string, args []string, stdout, stderr io.Writer) error{
		"deploy": runDeploy, "events": runEvents, "ioc": runIoC, "alerts": runAlerts, "tuf": runTUF, "attest": runAttest, "ek": runEK, "disclosures": runDisclosures, "products": runProducts, "release": runRelease,
	}
	if run, ok := groups[cmd]; ok {
		if sub == "" {
			return run(ctx, "", nil, stdout, stderr)
		}
		return run(ctx, sub, rest[1:], stdout, stderr)
	}
	switch cmd {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	case "version":
		fmt.Fprintln(stdout, "bulwark", Version)
		return nil
	case "server":
		return runServer(ctx, rest, stdout, stderr)
	case "simulate":
		return simulate.Main(ctx, rest, stdout, stderr)
	case "token":
		switch sub {
		case "create":
			return tokenCreate(ctx, rest[1:], stdout, stderr)
		case "list":
			return apiList(ctx, rest[1:], stdout, stderr, "/api/v1/tokens", &[]api.APIToken{}, printTokens)
		case "revoke":
			return apiDelete(ctx, rest[1:], stdout, stderr, "/api/v1/tokens/", "API token")
		}
	case "enroll-token":
		switch sub {
		case "create":
			return enrollTokenCreate(ctx, rest[1:], stdout, stderr)
		case "list":
			return apiList(ctx, rest[1:], stdout, stderr, "/api/v1/enroll-tokens", &[]api.EnrollToken{}, printEnrollTokens)
		case "revoke":
			return apiDelete(ctx, rest[1:], stdout, stderr, "/api/v1/enroll-tokens/", "enrolment token")
		}
	case "devices":
		switch sub {
		case "list":
			return devicesList(ctx, rest[1:], stdout, stderr)
		case "show":
			return devicesShow(ctx, rest[1:], stdout, stderr)
		case "revoke":
			return devicesRevoke(ctx, rest[1:], stdout, stderr)
		case "command":
			return devicesCommand(ctx, rest[1:], stdout, stderr)
		case "commands":
			return devicesCommands(ctx, rest[1:], stdout, stderr)
		}
	case "groups":
		switch sub {
		case "list":
			return apiList(ctx, rest[1:], stdout, stderr, "/api/v1/groups", &[]api.Group{}, printGroups)
		case "create":
			return groupsCreate(ctx, rest[1:], stdout, stderr)
		}
	case "users":
		switch sub {
		case "list":
			return apiList(ctx, rest[1:], stdout, stderr, "/api/v1/users", &[]api.User{}, printUsers)
		case "create":
			return usersCreate(ctx, rest[1:], stdout, stderr)
		}
	case "audit":
		switch sub {
		case "verify":
			return auditVerify(ctx, rest[1:], stdout, stderr)
		case "list":
			return auditList(ctx, rest[1:], stdout, stderr)
		}
	default:
		return &usageError{fmt.Sprintf("unknown command %q (see bulwark help)", cmd)}
	}
	if sub == "" {
		return &usageError{fmt.Sprintf("%s needs a subcommand (see bulwark help)", cmd)}
	}
	return &usageError{fmt.Sprintf("unknown subcommand %q for %s (see bulwark help)", sub, cmd)}
}

// flags builds a FlagSet that reports errors as usageError with one line.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("bulwark "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func parse(fs *flag.FlagSet, args []string, positional int) ([]string, error) {
	// Allow flags after positional arguments: bulwark devices show ID --json.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, &usageError{fs.Name() + ": see bulwark help"}
			}
			return nil, &usageError{fs.Name() + ": " + err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if positional >= 0 && len(pos) != positional { // -1: any number
		return nil, &usageError{fmt.Sprintf("%s: expected %d argument(s), got %d", fs.Name(), positional, len(pos))}
	}
	return pos, nil
}

type clientFlags struct{ addr, cacert string }

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.addr, "addr", "", "server URL (default $BULWARK_ADDR)")
	fs.StringVar(&c.cacert, "cacert", "", "server CA certificate (default $BULWARK_CACERT)")
}

func (c *clientFlags) client() (*apiClient, error) { return newAPIClient(c.addr, c.cacert) }

// parseClient adds the client flags to fs, parses args (expecting
// positional arguments) and builds the admin API client.
func parseClient(fs *flag.FlagSet, args []string, positional int) ([]string, *apiClient, error) {
	var cf clientFlags
	cf.register(fs)
	pos, err := parse(fs, args, positional)
	if err != nil {
		return nil, nil, err
	}
	c, err := cf.client()
	return pos, c, err
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func runServer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("server", stderr)
	data := fs.String("data", "", "data directory (created on first start)")
	listen := fs.String("listen", "127.0.0.1:8443", "HOST:PORT to serve HTTPS on")
	db := fs.String("db", "", "store: empty for SQLite in the data directory, or a postgres:// DSN")
	interval := fs.Duration("checkin-interval", 60*time.Second, "check-in interval devices are told to use")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	var hosts multiFlag
	fs.Var(&hosts, "host", "extra DNS name or IP for the TLS certificate (repeatable)")
	noConsole := fs.Bool("no-console", false, "do not serve the web console")
	attestInterval := fs.Duration("attest-interval", 10*time.Minute, "how often devices with a TPM attest")
	attestAction := fs.String("attest-failure-action", "quarantine", "what a failed attestation does: untrusted, quarantine (only health, attestation, event and update traffic) or revoke")
	siemSyslog := fs.String("siem-syslog", "", "forward every security event to this `HOST:PORT` as RFC 5424 syslog over TLS")
	siemSyslogCA := fs.String("siem-syslog-ca", "", "PEM `FILE` of the roots the SIEM collector's certificate must chain to (default: the system roots)")
	siemWebhook := fs.String("siem-webhook", "", "forward every security event to this https `URL` as a signed POST")
	siemWebhookSecret := fs.String("siem-webhook-secret-file", "", "`FILE` holding the webhook signing secret as text (at least 32 bytes; e.g. openssl rand -hex 32)")
	ekRoots := fs.String("ek-roots", "", "PEM `FILE` of TPM manufacturer CA certificates: EK certificates must chain to one (empty: EK certificates are recorded, not chain-checked)")
	var contacts multiFlag
	fs.Var(&contacts, "security-contact", "security.txt Contact: a mailto:, https: or tel: URI (repeatable; default: the server's own report form at /disclose)")
	retention := fs.Int("event-retention-days", 90, "days to keep security events after receipt (older ones are pruned)")
	iocPoll := fs.Duration("ioc-poll-interval", time.Hour, "poll interval of indicator feeds that name none (docs/ioc.md)")
	iocMax := fs.Int("ioc-max-indicators", 2_000_000, "most indicators one source (imported file or feed) may hold")
	iocAction := fs.String("ioc-device-action", api.IoCActionFlag, "what agents do when traffic on the device matches an indicator: `flag` (record an ioc.match event) or block (also drop traffic to and from IP and CIDR indicators; docs/ioc.md)")
	publicURL := fs.String("public-url", "", "https://HOST[:PORT] the server is reached at, for security.txt and report follow-up links (empty: the request's host)")
	var alerts server.AlertsConfig
	var emailTo multiFlag
	fs.StringVar(&alerts.WebhookURL, "alert-webhook", "", "`URL` to POST each new alert to, HMAC-signed (https, or http to loopback; empty: no webhook)")
	fs.StringVar(&alerts.WebhookSecretFile, "alert-webhook-secret-file", "", "`FILE` holding the webhook signing secret, at least 32 bytes (required with --alert-webhook)")
	fs.StringVar(&alerts.SyslogAddr, "alert-syslog", "", "syslog collector `HOST:PORT` to send alerts to as RFC 5424 over TLS (empty: none)")
	fs.StringVar(&alerts.SyslogCAFile, "alert-syslog-ca", "", "PEM `FILE` of CAs for the syslog collector's certificate (empty: the system roots)")
	fs.StringVar(&alerts.SMTPAddr, "alert-smtp", "", "SMTP relay `HOST:PORT` (STARTTLS required) to mail alerts through (empty: no mail)")
	fs.Var(&emailTo, "alert-email-to", "alert mail recipient `ADDR` (repeatable; required with --alert-smtp)")
	fs.StringVar(&alerts.EmailFrom, "alert-email-from", "", "alert mail sender `ADDR` (required with --alert-smtp)")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	if *data == "" {
		return &usageError{"server: --data DIR is required"}
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return &usageError{"server: --log-level must be debug, info, warn or error"}
	}
	if *retention < 1 {
		return &usageError{"server: --event-retention-days must be at least 1"}
	}
	cfg := server.Config{DataDir: *data, Listen: *listen, DB: *db, Hosts: hosts, CheckinInterval: *interval, EventRetentionDays: *retention,
		Logger: slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: lvl}))}
	cfg.Disclosure = disclosure.Config{Contacts: contacts, PublicURL: *publicURL}
	if *iocPoll < time.Minute || *iocMax < 1 {
		return &usageError{"server: --ioc-poll-interval must be at least 1m and --ioc-max-indicators at least 1"}
	}
	if *iocAction != api.IoCActionFlag && *iocAction != api.IoCActionBlock {
		return &usageError{"server: --ioc-device-action must be flag or block"}
	}
	cfg.IoC = server.IoCConfig{PollInterval: *iocPoll, MaxIndicators: *iocMax, DeviceAction: *iocAction}
	alerts.EmailTo = emailTo
	cfg.Alerts = alerts
	switch *attestAction {
	case server.ActionUntrusted, server.ActionQuarantine, server.ActionRevoke:
	default:
		return &usageError{"server: --attest-failure-action must be untrusted, quarantine or revoke"}
	}
	if *attestInterval < time.Minute {
		return &usageError{"server: --attest-interval must be at least 1m"}
	}
	cfg.Attestation = server.AttestConfig{Interval: *attestInterval, FailureAction: *attestAction, EKRootsFile: *ekRoots}
	cfg.Forward = server.ForwardConfig{SyslogAddr: *siemSyslog, SyslogCAFile: *siemSyslogCA, WebhookURL: *siemWebhook, WebhookSecretFile: *siemWebhookSecret}
	if err := cfg.Disclosure.Check(); err != nil {
		return &usageError{"server: " + err.Error()}
	}
	if !*noConsole {
		cfg.Console = console.New
	}
	srv, err := server.New(ctx, cfg)
	if err != nil {
		return err
	}
	base := "https://" + *listen
	if srv.InitialAdminPassword != "" {
		fmt.Fprintf(stdout, "Bulwark initialised %s.\n", *data)
		fmt.Fprintf(stdout, "First admin login: user \"admin\", password %s\n", srv.InitialAdminPassword)
		fmt.Fprintf(stdout, "  (also in %s/initial-admin-password, mode 0600: delete it after your first login)\n", *data)
	}
	fmt.Fprintf(stdout, "Console:  %s/ui/   (trust %s/ca.pem)\n", base, *data)
	fmt.Fprintf(stdout, "CLI:      export BULWARK_ADDR=%s BULWARK_CACERT=%s/ca.pem BULWARK_TOKEN=$(bulwark token create --data %s --role admin --name cli)\n", base, *data, *data)
	return srv.Run(ctx)
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func tokenCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("token create", stderr)
	data := fs.String("data", "", "server data directory: create the token locally (break-glass path)")
	db := fs.String("db", "", "store DSN when it is not the one recorded in the data directory")
	role := fs.String("role", "", "admin, operator or auditor")
	name := fs.String("name", "", "a name for the token")
	group := fs.String("group", "", "limit the token to one device group")
	ttl := fs.String("ttl", "", "lifetime (default 2160h = 90 days)")
	jsonOut := fs.Bool("json", false, "print the token record as JSON")
	var cf clientFlags
	cf.register(fs)
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	if *role == "" || *name == "" {
		return &usageError{"token create: --role and --name are required"}
	}
	req := api.APITokenCreate{Name: *name, Role: *role, Group: *group, TTL: *ttl}
	var out api.APIToken
	if *data != "" {
		st, err := server.OpenStore(ctx, *data, *db)
		if err != nil {
			return err
		}
		defer st.Close()
		actor := "local:unknown"
		if u, err := user.Current(); err == nil {
			actor = "local:" + u.Username
		}
		if out, err = server.CreateAPITokenLocal(ctx, st, actor, req); err != nil {
			return fmt.Errorf("token create: %w", err)
		}
	} else {
		c, err := cf.client()
		if err != nil {
			return err
		}
		if err := c.do(ctx, "POST", "/api/v1/tokens", req, &out); err != nil {
			return err
		}
	}
	if *jsonOut {
		return printJSON(stdout, out)
	}
	fmt.Fprintln(stdout, out.Token)
	return nil
}

func enrollTokenCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("enroll-token create", stderr)
	uses := fs.Int("uses", 1, "how many devices may enrol with it")
	ttl := fs.String("ttl", "24h", "how long it is valid")
	group := fs.String("group", "", "device group new devices join")
	name := fs.String("name", "", "a note on what it is for")
	jsonOut := fs.Bool("json", false, "print the token record as JSON")
	var cf clientFlags
	cf.register(fs)
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	if _, err := time.ParseDuration(*ttl); err != nil {
		return &usageError{fmt.Sprintf("enroll-token create: --ttl %q is not a duration (e.g. 24h)", *ttl)}
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	var out api.EnrollToken
	if err := c.do(ctx, "POST", "/api/v1/enroll-tokens", api.EnrollTokenCreate{Uses: *uses, TTL: *ttl, Group: *group, Name: *name}, &out); err != nil {
		return err
	}
	if *jsonOut {
		return printJSON(stdout, out)
	}
	fmt.Fprintln(stdout, out.Token)
	return nil
}

func apiList[T any](ctx context.Context, args []string, stdout, stderr io.Writer, path string, out *T, print func(io.Writer, T)) error {
	fs := newFlags(strings.TrimPrefix(path, "/api/v1/")+" list", stderr)
	jsonOut := fs.Bool("json", false, "print JSON")
	_, c, err := parseClient(fs, args, 0)
	if err != nil {
		return err
	}
	if err := c.do(ctx, "GET", path, nil, out); err != nil {
		return err
	}
	if *jsonOut {
		return printJSON(stdout, *out)
	}
	print(stdout, *out)
	return nil
}

func apiDelete(ctx context.Context, args []string, stdout, stderr io.Writer, prefix, what string) error {
	fs := newFlags(what+" revoke", stderr)
	pos, c, err := parseClient(fs, args, 1)
	if err != nil {
		return err
	}
	if err := c.do(ctx, "DELETE", prefix+url.PathEscape(pos[0]), nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "revoked %s %s\n", what, pos[0])
	return nil
}

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

func ago(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return time.Since(*t).Round(time.Second).String() + " ago"
}

func printTokens(w io.Writer, ts []api.APIToken) {
	tw := table(w)
	fmt.Fprintln(tw, "ID\tNAME\tROLE\tGROUP\tEXPIRES\tLAST USED\tREVOKED")
	for _, t := range ts {
		exp := "never"
		if t.ExpiresAt != nil {
			exp = t.ExpiresAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%v\n", t.ID, t.Name, t.Role, t.Group, exp, ago(t.LastUsed), t.Revoked)
	}
	tw.Flush()
}

func printEnrollTokens(w io.Writer, ts []api.EnrollToken) {
	tw := table(w)
	fmt.Fprintln(tw, "ID\tNAME\tGROUP\tUSED\tEXPIRES\tREVOKED")
	for _, t := range ts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%v\n", t.ID, t.Name, t.Group, t.Used, t.MaxUses, t.ExpiresAt.Format(time.RFC3339), t.Revoked)
	}
	tw.Flush()
}

func printGroups(w io.Writer, gs []api.Group) {
	tw := table(w)
	fmt.Fprintln(tw, "NAME\tDEVICES\tDESCRIPTION")
	for _, g := range gs {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", g.Name, g.Devices, g.Description)
	}
	tw.Flush()
}

func printUsers(w io.Writer, us []api.User) {
	tw := table(w)
	fmt.Fprintln(tw, "USERNAME\tGRANTS\tTOTP\tDISABLED\tLAST LOGIN")
	for _, u := range us {
		var gs []string
		for _, g := range u.Grants {
			s := g.Role
			if g.Group != "" {
				s += "@" + g.Group
			}
			gs = append(gs, s)
		}
		fmt.Fprintf(tw, "%s\t%s\t%v\t%v\t%s\n", u.Username, strings.Join(gs, ","), u.TOTP, u.Disabled, ago(u.LastLogin))
	}
	tw.Flush()
}

func devicesList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("devices list", stderr)
	jsonOut := fs.Bool("json", false, "print JSON")
	q := fs.String("q", "", "search ID or hostname")
	group := fs.String("group", "", "only this group")
	status := fs.String("status", "", "active or revoked")
	limit := fs.Int("limit", 1000, "at most this many devices")
	_, c, err := parseClient(fs, args, 0)
	if err != nil {
		return err
	}
	v := url.Values{}
	for k, val := range map[string]string{"q": *q, "group": *group, "status": *status} {
		if val != "" {
			v.Set(k, val)
		}
	}
	v.Set("limit", fmt.Sprint(*limit))
	var out api.DeviceList
	if err := c.do(ctx, "GET", "/api/v1/devices?"+v.Encode(), nil, &out); err != nil {
		return err
	}
	if *jsonOut {
		return printJSON(stdout, out)
	}
	tw := table(stdout)
	fmt.Fprintln(tw, "ID\tHOSTNAME\tGROUP\tSTATUS\tHEALTH\tONLINE\tLAST SEEN")
	for _, d := range out.Devices {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%v\t%s\n", d.ID, d.Hostname, d.Group, d.Status, d.HealthStatus, d.Online, ago(d.LastSeen))
	}
	tw.Flush()
	fmt.Fprintf(stdout, "%d of %d devices\n", len(out.Devices), out.Total)
	return nil
}

func devicesShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("devices show", stderr)
	jsonOut := fs.Bool("json", false, "print JSON")
	pos, c, err := parseClient(fs, args, 1)
	if err != nil {
		return err
	}
	var d api.Device
	if err := c.do(ctx, "GET", "/api/v1/devices/"+url.PathEscape(pos[0]), nil, &d); err != nil {
		return err
	}
	if *jsonOut {
		return printJSON(stdout, d)
	}
	tw := table(stdout)
	fmt.Fprintf(tw, "ID\t%s\nHostname\t%s\nStatus\t%s\nGroup\t%s\nOnline\t%v\nLast seen\t%s\nHealth\t%s\nKey\t%s\nEnrolled\t%s\n",
		d.ID, d.Hostname, d.Status, d.Group, d.Online, ago(d.LastSeen), d.HealthStatus, d.KeyAssurance, d.EnrolledAt.Format(time.RFC3339))
	if inv := d.Inventory; inv != nil {
		fmt.Fprintf(tw, "OS\t%s %s\nKernel\t%s\nArch\t%s\nAgent\t%s\nUptime\t%s\n", inv.OS, inv.OSVersion, inv.Kernel, inv.Arch, inv.AgentVersion,
			(time.Duration(inv.UptimeSeconds) * time.Second).String())
	}
	if cert := d.Certificate; cert != nil {
		fmt.Fprintf(tw, "Certificate\t%s (valid until %s)\n", cert.Serial, cert.NotAfter.Format(time.RFC3339))
	}
	if d.Trust != "" {
		fmt.Fprintf(tw, "Trust\t%s\n", d.Trust)
	}
	if a := d.Attestation; a != nil {
		fmt.Fprintf(tw, "Attestation\t%s (%s, %s)\n", a.Status, a.Reason, a.Time.Format(time.RFC3339))
		for _, p := range a.Problems {
			fmt.Fprintf(tw, "\t- %s\n", p)
		}
	}
	return tw.Flush()
}

func devicesRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("devices revoke", stderr)
	pos, c, err := parseClient(fs, args, 1)
	if err != nil {
		return err
	}
	var d api.Device
	if err := c.do(ctx, "POST", "/api/v1/devices/"+url.PathEscape(pos[0])+"/revoke", nil, &d); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "revoked device %s (%s)\n", d.ID, d.Hostname)
	return nil
}

func devicesCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("devices command", stderr)
	kind := fs.String("kind", "", "ping or checkin")
	var cf clientFlags
	cf.register(fs)
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	if *kind == "" {
		return &usageError{"devices command: --kind is required"}
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	var out api.CommandStatus
	if err := c.do(ctx, "POST", "/api/v1/devices/"+url.PathEscape(pos[0])+"/commands", api.CommandCreate{Kind: *kind}, &out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "queued %s command %s\n", out.Kind, out.ID)
	return nil
}

func groupsCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("groups create", stderr)
	desc := fs.String("description", "", "what the group is")
	pos, c, err := parseClient(fs, args, 1)
	if err != nil {
		return err
	}
	if err := c.do(ctx, "POST", "/api/v1/groups", api.Group{Name: pos[0], Description: *desc}, nil); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "created group %s\n", pos[0])
	return nil
}

func usersCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("users create", stderr)
	name := fs.String("username", "", "login name")
	role := fs.String("role", "", "admin, operator or auditor")
	group := fs.String("group", "", "limit the role to one device group")
	var cf clientFlags
	cf.register(fs)
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	if *name == "" || *role == "" {
		return &usageError{"users create: --username and --role are required"}
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	var out api.UserCreated
	if err := c.do(ctx, "POST", "/api/v1/users", api.UserCreate{Username: *name, Grants: []api.Grant{{Role: *role, Group: *group}}}, &out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "created user %s with password %s (shown once)\n", out.User.Username, out.Password)
	return nil
}

// fetchAudit pages through the whole audit log.
func fetchAudit(ctx context.Context, c *apiClient, each func([]api.AuditEntry) error) error {
	var after int64
	for {
		var page api.AuditPage
		if err := c.do(ctx, "GET", fmt.Sprintf("/api/v1/audit?after=%d&limit=5000", after), nil, &page); err != nil {
			return err
		}
		if err := each(page.Entries); err != nil {
			return err
		}
		if page.Next == 0 || len(page.Entries) == 0 {
			return nil
		}
		after = page.Next
	}
}

// auditVerify downloads the audit log and recomputes its hash chain on the
// client, so a tampered database cannot vouch for itself. With --anchor it
// also checks the log still holds the head recorded by the previous run
// (which catches entries removed from the end, the one change a hash chain
// alone cannot show) and records the new head.
func auditVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("audit verify", stderr)
	anchorFile := fs.String("anchor", "", "file holding the head verified last time; checked, then updated")
	var cf clientFlags
	cf.register(fs)
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	var anchor *auditAnchor
	if *anchorFile != "" {
		a, err := readAnchor(*anchorFile)
		if err != nil {
			return err
		}
		anchor = a
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	var prev string
	var seq int64
	anchorSeen := false
	err = fetchAudit(ctx, c, func(es []api.AuditEntry) error {
		prev, seq, err = api.VerifyAuditChain(prev, seq, es)
		if err != nil {
			return err
		}
		if anchor != nil {
			for _, e := range es {
				if e.Seq == anchor.Seq {
					if e.Hash != anchor.Hash {
						return fmt.Errorf("audit: entry %d differs from the anchored head (the log was rewritten)", e.Seq)
					}
					anchorSeen = true
				}
			}
		}
		return nil
	})
	if err == nil && anchor != nil && anchor.Seq > 0 && !anchorSeen {
		err = fmt.Errorf("audit: the log ends at entry %d but entry %d was verified before: entries were removed", seq, anchor.Seq)
	}
	if err != nil {
		return fmt.Errorf("audit log verification FAILED: %w", err)
	}
	if *anchorFile != "" {
		if err := writeAnchor(*anchorFile, auditAnchor{Seq: seq, Hash: prev}); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "audit log OK: %d entries, chain head %s\n", seq, prev)
	return nil
}

type auditAnchor struct {
	Seq  int64
	Hash string
}

func readAnchor(path string) (*auditAnchor, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &auditAnchor{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the audit anchor: %w", err)
	}
	var a auditAnchor
	if _, err := fmt.Sscanf(string(b), "%d %64s", &a.Seq, &a.Hash); err != nil || a.Seq < 0 || len(a.Hash) != 64 {
		return nil, fmt.Errorf("%s is not an audit anchor (expected \"SEQ HASH\")", path)
	}
	return &a, nil
}

func writeAnchor(path string, a auditAnchor) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(fmt.Sprintf("%d %s\n", a.Seq, a.Hash)), 0o600); err != nil {
		return fmt.Errorf("writing the audit anchor: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing the audit anchor: %w", err)
	}
	return nil
}

func auditList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("audit list", stderr)
	jsonOut := fs.Bool("json", false, "print JSON")
	limit := fs.Int("limit", 100, "show the last N entries")
	_, c, err := parseClient(fs, args, 0)
	if err != nil {
		return err
	}
	var all []api.AuditEntry
	if err := fetchAudit(ctx, c, func(es []api.AuditEntry) error {
		all = append(all, es...)
		if len(all) > *limit {
			all = all[len(all)-*limit:]
		}
		return nil
	}); err != nil {
		return err
	}
	if *jsonOut {
		return printJSON(stdout, all)
	}
	tw := table(stdout)
	fmt.Fprintln(tw, "SEQ\tTIME\tACTOR\tACTION\tTARGET\tOUTCOME")
	for _, e := range all {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.Format(time.RFC3339), e.Actor, e.Action, e.Target, e.Outcome)
	}
	return tw.Flush()
}

func devicesCommands(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("devices commands", stderr)
	jsonOut := fs.Bool("json", false, "print JSON")
	pos, c, err := parseClient(fs, args, 1)
	if err != nil {
		return err
	}
	var out []api.CommandStatus
	if err := c.do(ctx, "GET", "/api/v1/devices/"+url.PathEscape(pos[0])+"/commands", nil, &out); err != nil {
		return err
	}
	if *jsonOut {
		return printJSON(stdout, out)
	}
	tw := table(stdout)
	fmt.Fprintln(tw, "ID\tKIND\tSTATUS\tCREATED\tBY\tDETAIL")
	for _, c := range out {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.Kind, c.Status, c.CreatedAt.Format(time.RFC3339), c.CreatedBy, c.Detail)
	}
	return tw.Flush()
}
