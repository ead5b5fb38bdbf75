// Package conformance checks that the Code of Practice conformance map,
// docs/code-of-practice.md, stays true.
//
// The package has no exported API; its tests are the check. They parse the
// single conformance table in docs/code-of-practice.md and fail when a
// guideline of the UK Code of Practice for Enterprise Connected Device
// Security (1.1 to 11.4, plus the suggested vulnerability-disclosure
// principle "VD") is missing, duplicated or out of order, when a Level does
// not match the Code's verb, when a Status is unknown, when a "met" or
// "partial" row names no evidence, or when a "met" row names a test function,
// package or document that does not exist. Run it with:
//
//	go test ./internal/conformance/
//
// Evidence for "partial" rows that does not exist yet is reported with t.Log
// only (see go test -v), so the map can name the tests that will prove a
// guideline before they are written.
package conformance
