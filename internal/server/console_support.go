package server

import (
	"errors"
	"net/http"
)

// ErrorMessage returns the HTTP status and the message that is safe to
// show a user for an error returned by the exported helpers (the console
// renders it). Internal detail is never included: an error the server did
// not classify is a 500 with a generic message, and is for the log only.
func ErrorMessage(err error) (status int, msg string) {
	var he *httpError
	if errors.As(err, &he) {
		return he.Status, he.Msg
	}
	var le *LoginError
	if errors.As(err, &le) {
		return le.Status, le.Msg
	}
	return http.StatusInternalServerError, "internal error; the server log has details"
}
