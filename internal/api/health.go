package api

// Health states (Code of Practice 5.1), from best to worst. The definition
// of each check and the thresholds that decide its state is
// internal/healthdef (served as JSON) and docs/device-health.md.
const (
	// HealthHealthy: the check passed.
	HealthHealthy = "healthy"
	// HealthDegraded: the device works but needs attention.
	HealthDegraded = "degraded"
	// HealthUnhealthy: the device cannot be trusted or cannot do its job.
	HealthUnhealthy = "unhealthy"
	// HealthUnknown: the check could not be evaluated (no data yet, or the
	// platform cannot tell). An unknown check never makes the summary
	// worse than healthy on its own, and the summary is unknown only when
	// every check is.
	HealthUnknown = "unknown"
)

// HealthStates are the health states in order, best first.
var HealthStates = []string{HealthHealthy, HealthDegraded, HealthUnhealthy, HealthUnknown}

// NormalizeHealthStatus maps a health status to one of HealthStates,
// accepting the names agents before the health model used ("ok" for
// healthy, "failing" for unhealthy) so that older agents keep checking in.
// It reports false for anything else.
func NormalizeHealthStatus(s string) (string, bool) {
	switch s {
	case HealthHealthy, HealthDegraded, HealthUnhealthy, HealthUnknown:
		return s, true
	case "ok":
		return HealthHealthy, true
	case "failing":
		return HealthUnhealthy, true
	}
	return "", false
}

// HealthRank orders health states for a summary: healthy 0, unknown 0,
// degraded 1, unhealthy 2. Unknown ranks with healthy because a check that
// cannot tell is not evidence of a problem; it is shown as unknown, never
// as healthy.
func HealthRank(s string) int {
	switch s {
	case HealthDegraded:
		return 1
	case HealthUnhealthy:
		return 2
	}
	return 0
}

// SummarizeHealth builds a Health from its checks: the status is the worst
// of the checks' statuses by HealthRank, healthy when a check is healthy
// and none is worse, and unknown when there are no checks or every check
// is unknown.
func SummarizeHealth(checks []HealthCheck) Health {
	h := Health{Status: HealthUnknown, Checks: checks}
	worst := -1
	for _, c := range checks {
		if c.Status == HealthUnknown {
			continue
		}
		if r := HealthRank(c.Status); r > worst {
			worst, h.Status = r, c.Status
		}
	}
	return h
}
