package simulate

import (
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/api"
)

func TestRolloutDone(t *testing.T) {
	t.Parallel()
	st := []int{5, 25, 100}
	tests := []struct {
		d     api.Deployment
		state string
		done  bool
	}{
		{api.Deployment{State: "running", Stage: 1, Stages: st, Counts: map[string]int{"success": 5, "waiting": 95}}, "running", false},
		{api.Deployment{State: "running", Stage: 3, Stages: st, Counts: map[string]int{"success": 99, "installing": 1}}, "running", false},
		{api.Deployment{State: "running", Stage: 3, Stages: st, Counts: map[string]int{"success": 99, "pending": 1}}, "running", false},
		{api.Deployment{State: "running", Stage: 3, Stages: st, Counts: map[string]int{"success": 98, "failed": 1, "rolled-back": 1}}, "completed", true},
		{api.Deployment{State: "running", Stage: 3, Stages: st, Counts: map[string]int{}}, "running", false},
		{api.Deployment{State: "halted", Stage: 1, Stages: st, Counts: map[string]int{"failed": 5, "waiting": 95}}, "halted", true},
		{api.Deployment{State: "completed", Stage: 3, Stages: st}, "completed", true},
		{api.Deployment{State: "aborted", Stage: 2, Stages: st}, "aborted", true},
		{api.Deployment{State: "paused", Stage: 3, Stages: st, Counts: map[string]int{"success": 100}}, "paused", false},
	}
	for _, tt := range tests {
		if state, done := rolloutDone(tt.d); state != tt.state || done != tt.done {
			t.Errorf("rolloutDone(%+v) = %q, %v; want %q, %v", tt.d, state, done, tt.state, tt.done)
		}
	}
}

func TestFormatRollout(t *testing.T) {
	t.Parallel()
	r := RolloutResult{State: "completed", Stage: 3, Stages: []int{5, 25, 100}, Success: 9998, Failed: 2, Took: 62*time.Second + 345*time.Millisecond}
	if got, want := FormatRollout(r), "rollout=completed stages=3/3 success=9998 failed=2 took=1m2.3s"; got != want {
		t.Errorf("FormatRollout = %q, want %q", got, want)
	}
}
