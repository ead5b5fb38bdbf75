package server

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/bulwark-iot/bulwark/internal/api"
)

// httpError separates what the client sees (Status, Code, Msg) from what
// is logged (Err).
type httpError struct {
	Status int
	Code   string
	Msg    string
	Err    error
}

func (e *httpError) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func errf(status int, code, msg string) *httpError {
	return &httpError{Status: status, Code: code, Msg: msg}
}

func badRequest(msg string) *httpError { return errf(http.StatusBadRequest, "bad_request", msg) }

var (
	errNotFound     = errf(http.StatusNotFound, "not_found", "no such resource")
	errForbidden    = errf(http.StatusForbidden, "forbidden", "your role does not allow this action")
	errUnauthorized = errf(http.StatusUnauthorized, "unauthorized", "authentication required: send a bearer API token or log in")
)

func internal(err error) *httpError {
	return &httpError{Status: http.StatusInternalServerError, Code: "internal", Msg: "internal error; the server log has details", Err: err}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var he *httpError
	if !errors.As(err, &he) {
		he = internal(err)
	}
	if he.Status >= 500 {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", he.Error())
	} else if he.Err != nil {
		s.log.Debug("request refused", "method", r.Method, "path", r.URL.Path, "err", he.Error())
	}
	writeJSON(w, he.Status, api.Error{Code: he.Code, Message: he.Msg})
}

// handlerFunc is an HTTP handler that returns its error for one place to
// turn it into a response.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// decode reads a JSON body with the given limit into v.
func decode(r *http.Request, limit int64, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && ct != "application/json" && !hasPrefix(ct, "application/json;") {
		return errf(http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json")
	}
	if err := api.Decode(http.MaxBytesReader(nil, r.Body, limit+1), limit, v); err != nil {
		var de *api.DecodeError
		if errors.As(err, &de) {
			if de.TooLarge {
				return errf(http.StatusRequestEntityTooLarge, "too_large", de.Msg)
			}
			return badRequest(de.Msg)
		}
		return badRequest(err.Error())
	}
	return nil
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }

var _ = slog.Default
