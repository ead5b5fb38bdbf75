package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
)

// apiClient talks to the admin API with a bearer token.
type apiClient struct {
	base  string
	token string
	hc    *http.Client
}

// newAPIClient builds a client from BULWARK_ADDR, BULWARK_TOKEN and
// BULWARK_CACERT, overridden by non-empty flag values.
func newAPIClient(addr, caFile string) (*apiClient, error) {
	if addr == "" {
		addr = os.Getenv("BULWARK_ADDR")
	}
	if addr == "" {
		return nil, fmt.Errorf("no server address: set BULWARK_ADDR (e.g. https://127.0.0.1:8443) or pass --addr")
	}
	u, err := url.Parse(addr)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("server address %q must be an https:// URL", addr)
	}
	token := os.Getenv("BULWARK_TOKEN")
	if token == "" {
		return nil, fmt.Errorf("no API token: set BULWARK_TOKEN (create one with: bulwark token create --data DIR --role admin --name NAME)")
	}
	if caFile == "" {
		caFile = os.Getenv("BULWARK_CACERT")
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS13}
	if caFile != "" {
		pemData, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("reading CA certificate: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemData) {
			return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
		}
		tlsCfg.RootCAs = pool
	}
	return &apiClient{base: strings.TrimRight(addr, "/"), token: token, hc: &http.Client{
		Timeout:   60 * time.Second,
		Transport: &http.Transport{TLSClientConfig: tlsCfg, ForceAttemptHTTP2: true},
	}}, nil
}

func (c *apiClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e api.Error
		if json.Unmarshal(data, &e) == nil && e.Message != "" {
			return fmt.Errorf("server refused (%d %s): %s", resp.StatusCode, e.Code, e.Message)
		}
		return fmt.Errorf("server answered %s", resp.Status)
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decoding answer: %w", err)
		}
	}
	return nil
}
