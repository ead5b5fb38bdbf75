package simulate

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
)

// admin is a client of the server's admin API, authenticated with the
// configured token. It keeps one connection alive for the whole run.
type admin struct {
	server, token string
	tr            *http.Transport
	hc            *http.Client
}

func newAdmin(cfg Config) *admin {
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: cfg.Roots},
		ForceAttemptHTTP2: true,
	}
	return &admin{server: cfg.Server, token: cfg.Token, tr: tr, hc: &http.Client{Transport: tr, Timeout: cfg.Timeout}}
}

func (a *admin) close() { a.tr.CloseIdleConnections() }

// errConflict is returned (wrapped) for a 409 answer.
var errConflict = errors.New("conflict")

// do makes one admin API call: what names it in errors ("creating the
// enrolment token"), allowed says what the token must be allowed to do
// (for 401 and 403 answers). body is JSON-encoded unless it is a []byte,
// which is sent as application/octet-stream. out, if not nil, receives the
// decoded answer.
func (a *admin) do(ctx context.Context, what, allowed, method, path string, query url.Values, body, out any) error {
	var rd io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case []byte:
		rd, ctype = bytes.NewReader(b), "application/octet-stream"
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		rd, ctype = bytes.NewReader(data), "application/json"
	}
	u, err := url.JoinPath(a.server, path)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := a.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s: reading the answer: %w", what, err)
	}
	if resp.StatusCode/100 != 2 {
		var ae api.Error
		_ = json.Unmarshal(data, &ae)
		msg := fmt.Sprintf("server answered %s", resp.Status)
		if ae.Code != "" || ae.Message != "" {
			msg = fmt.Sprintf("server refused (%d %s): %s", resp.StatusCode, ae.Code, ae.Message)
		}
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			msg += fmt.Sprintf(" (the admin API token must be valid and allowed to %s)", allowed)
		}
		if resp.StatusCode == http.StatusConflict {
			return fmt.Errorf("%s: %s: %w", what, msg, errConflict)
		}
		return fmt.Errorf("%s: %s", what, msg)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s: decoding the answer: %w", what, err)
		}
	}
	return nil
}

// createEnrollToken asks the admin API for a token good for every device.
func (s *sim) createEnrollToken(ctx context.Context, a *admin) (string, error) {
	var tok api.EnrollToken
	err := a.do(ctx, "creating the enrolment token", "create enrolment tokens", http.MethodPost, "/api/v1/enroll-tokens", nil,
		api.EnrollTokenCreate{
			Name:  "simulate-" + time.Now().UTC().Format("20060102T150405Z"),
			Uses:  s.cfg.Devices,
			TTL:   "1h",
			Group: s.cfg.Group,
		}, &tok)
	if err != nil {
		return "", err
	}
	if tok.Token == "" {
		return "", errors.New("creating the enrolment token: the answer holds no token")
	}
	return tok.Token, nil
}

// createGroup creates a device group; an existing group is not an error,
// but is reported (it may hold devices other than the simulated ones).
func (s *sim) createGroup(ctx context.Context, a *admin, name string) error {
	err := a.do(ctx, "creating group "+name, "create groups (a global admin)", http.MethodPost, "/api/v1/groups", nil,
		api.Group{Name: name, Description: "bulwark simulate"}, nil)
	if errors.Is(err, errConflict) {
		fmt.Fprintf(s.out, "warning: group %s exists already; devices in it that are not simulated are part of the deployment\n", name)
		return nil
	}
	return err
}

// publishRelease publishes a small artifact as a release.
func (s *sim) publishRelease(ctx context.Context, a *admin, product, version string, artifact []byte) (api.Release, error) {
	var rel api.Release
	err := a.do(ctx, "publishing release "+product+" "+version, "publish releases (a global admin)", http.MethodPost, "/api/v1/releases",
		url.Values{"product": {product}, "version": {version}, "filename": {"app.tar.gz"}}, artifact, &rel)
	return rel, err
}

// createDeployment starts a staged deployment of product@version to group.
func (s *sim) createDeployment(ctx context.Context, a *admin, product, version, group, stages string) (api.Deployment, error) {
	var dep api.Deployment
	err := a.do(ctx, "creating the deployment", "create deployments", http.MethodPost, "/api/v1/deployments", nil,
		api.DeploymentCreate{Product: product, Version: version, Group: group, Stages: stages}, &dep)
	return dep, err
}

// getDeployment reads a deployment's state, stage and counts.
func (s *sim) getDeployment(ctx context.Context, a *admin, id string) (api.Deployment, error) {
	var dep api.Deployment
	err := a.do(ctx, "reading the deployment", "read deployments", http.MethodGet, "/api/v1/deployments/"+url.PathEscape(id), url.Values{"devices": {"false"}}, nil, &dep)
	return dep, err
}

// trimStages normalises a --stages value: "5, 25,100" → "5,25,100".
func trimStages(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		parts[i] = strings.TrimSpace(p)
	}
	return strings.Join(parts, ",")
}
