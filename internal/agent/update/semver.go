package update

import "github.com/bulwark-iot/bulwark/internal/semver"

// Version is a parsed Semantic Versioning 2.0.0 version. Parsing is
// strict (no leading "v", no leading zeros, identifiers of [0-9A-Za-z-]),
// so that two different strings never name the same release directory.
type Version = semver.Version

// ParseVersion parses s strictly as MAJOR.MINOR.PATCH[-PRE][+BUILD].
func ParseVersion(s string) (Version, error) { return semver.Parse(s) }

// CompareVersions parses and orders two versions.
func CompareVersions(a, b string) (int, error) { return semver.CompareStrings(a, b) }
