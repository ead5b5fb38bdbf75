package api

import "testing"

func TestSummarizeHealth(t *testing.T) {
	chk := func(states ...string) []HealthCheck {
		var cs []HealthCheck
		for _, s := range states {
			cs = append(cs, HealthCheck{Name: "c", Status: s})
		}
		return cs
	}
	for _, tc := range []struct {
		checks []HealthCheck
		want   string
	}{
		{nil, HealthUnknown},
		{chk(HealthUnknown, HealthUnknown), HealthUnknown},
		{chk(HealthHealthy, HealthUnknown), HealthHealthy},
		{chk(HealthUnknown, HealthDegraded, HealthHealthy), HealthDegraded},
		{chk(HealthUnhealthy, HealthDegraded), HealthUnhealthy},
		{chk(HealthHealthy, HealthHealthy), HealthHealthy},
	} {
		if got := SummarizeHealth(tc.checks).Status; got != tc.want {
			t.Errorf("SummarizeHealth(%v) = %q, want %q", tc.checks, got, tc.want)
		}
	}
}

func TestNormalizeHealthStatus(t *testing.T) {
	for in, want := range map[string]string{
		"healthy": HealthHealthy, "degraded": HealthDegraded, "unhealthy": HealthUnhealthy,
		"unknown": HealthUnknown, "ok": HealthHealthy, "failing": HealthUnhealthy, "great": "", "": "",
	} {
		got, ok := NormalizeHealthStatus(in)
		if got != want || ok != (want != "") {
			t.Errorf("NormalizeHealthStatus(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

func TestHealthValidateNormalizesLegacy(t *testing.T) {
	h := Health{Status: "ok", Checks: []HealthCheck{{Name: "disk", Status: "failing"}}}
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	if h.Status != HealthHealthy || h.Checks[0].Status != HealthUnhealthy {
		t.Fatalf("legacy statuses not normalised: %+v", h)
	}
	bad := Health{Status: "great"}
	if err := bad.Validate(); err == nil {
		t.Fatal("status great accepted")
	}
}
