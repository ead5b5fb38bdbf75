package deviceclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/bulwark-iot/bulwark/internal/api"
)

// ErrNotModified is returned by FetchIoC when the set is still the one
// named by the ETag sent.
var ErrNotModified = errors.New("not modified")

// ErrIoCTooLarge is returned (wrapped) by FetchIoC when the set is larger
// than the caller's bound.
var ErrIoCTooLarge = errors.New("indicator set too large")

// FetchIoC fetches the active indicators of compromise (GET
// /device/v1/ioc), sending etag (empty: none) in If-None-Match. It returns
// the body, uncompressed and at most max bytes, undecoded, and the
// answer's ETag; ErrNotModified when the set has not changed. The
// transport asks for gzip and inflates the answer.
func (c *Client) FetchIoC(ctx context.Context, etag string, max int64) (body []byte, newETag string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 4*c.timeout) // a large set takes a while on a slow link
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base.JoinPath(api.PathIoC).String(), nil)
	if err != nil {
		return nil, "", err
	}
	if etag != "" {
		req.Header.Set("If-None-Match", `"`+strings.Trim(etag, `"`)+`"`)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("indicators: %w", err)
	}
	defer resp.Body.Close()
	newETag = strings.Trim(resp.Header.Get("ETag"), `"`)
	switch {
	case resp.StatusCode == http.StatusNotModified:
		return nil, newETag, ErrNotModified
	case resp.StatusCode/100 != 2:
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var ae api.Error
		_ = json.Unmarshal(data, &ae)
		return nil, "", fmt.Errorf("indicators: %w", &Error{Status: resp.StatusCode, Code: ae.Code, Message: ae.Message})
	}
	body, err = io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, "", fmt.Errorf("indicators: reading the answer: %w", err)
	}
	if int64(len(body)) > max {
		return nil, "", fmt.Errorf("indicators: the set is over %d bytes: %w", max, ErrIoCTooLarge)
	}
	return body, newETag, nil
}
