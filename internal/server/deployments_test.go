package server_test

import (
	"context"
	"strings"
	"testing"

	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/deviceclient"
	"github.com/bulwark-iot/bulwark/internal/server/servertest"
)

func reportUpdate(t *testing.T, ts *servertest.Server, d *device, dep, status string) int {
	t.Helper()
	var code int
	err := doDevice(d, api.UpdateStatus{DeploymentID: dep, Status: status, Detail: "test " + status})
	if err == nil {
		return 204
	}
	var e *deviceclient.Error
	if !errorsAs(err, &e) {
		t.Fatal(err)
	}
	code = e.Status
	return code
}

func TestDeploymentThroughCheckins(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	ts.Do(t, "POST", "/api/v1/groups", "", api.Group{Name: "lab"}, nil)
	tok := ts.EnrollToken(t, 4, "lab")
	devs := make([]*device, 4)
	for i := range devs {
		devs[i] = enroll(t, ts, tok, "cam")
	}
	if code, _, e := publish(t, ts, rq("camera", "1.0.0"), "firmware"); code != 201 {
		t.Fatalf("publish: %d %+v", code, e)
	}
	var auditorTok api.APIToken
	ts.Do(t, "POST", "/api/v1/tokens", "", api.APITokenCreate{Name: "aud", Role: "auditor"}, &auditorTok)
	req := api.DeploymentCreate{Product: "camera", Version: "1.0.0", Group: "lab", Stages: "25,100"}
	if code := ts.Do(t, "POST", "/api/v1/deployments", auditorTok.Token, req, nil); code != 403 {
		t.Fatalf("auditor deploying: %d", code)
	}
	var opTok api.APIToken
	ts.Do(t, "POST", "/api/v1/tokens", "", api.APITokenCreate{Name: "op", Role: "operator"}, &opTok)
	if code := ts.Do(t, "POST", "/api/v1/deployments", opTok.Token, api.DeploymentCreate{Product: "camera", Version: "1.0.0", Group: "lab", AllowDowngrade: true}, nil); code != 403 {
		t.Fatalf("operator allowing a downgrade: %d", code)
	}
	if code := ts.Do(t, "POST", "/api/v1/deployments", "", api.DeploymentCreate{Product: "camera", Version: "9.0.0", Group: "lab"}, nil); code != 404 {
		t.Fatalf("deploying an unpublished release: %d", code)
	}
	if code := ts.Do(t, "POST", "/api/v1/deployments", "", api.DeploymentCreate{Product: "camera", Version: "1.0.0", Group: "lab", Stages: "50,25"}, nil); code != 400 {
		t.Fatalf("bad stages: %d", code)
	}
	var dep api.Deployment
	if code := ts.Do(t, "POST", "/api/v1/deployments", "", req, &dep); code != 201 || dep.State != "running" || dep.Counts["pending"] != 1 {
		t.Fatalf("create: %d %+v", code, dep)
	}
	// Stage 1 (25% of 4): one device gets the assignment at check-in.
	assigned := func() []*device {
		var out []*device
		for _, d := range devs {
			resp, err := checkin(d, "cam")
			if err != nil {
				t.Fatal(err)
			}
			if resp.Update != nil {
				if resp.Update.DeploymentID != dep.ID || resp.Update.Target != "camera/1.0.0/app.tar.gz" {
					t.Fatalf("assignment %+v", resp.Update)
				}
				out = append(out, d)
			}
		}
		return out
	}
	first := assigned()
	if len(first) != 1 {
		t.Fatalf("%d devices assigned in stage 1", len(first))
	}
	for _, st := range []string{"downloading", "installing", "success"} {
		if code := reportUpdate(t, ts, first[0], dep.ID, st); code != 204 {
			t.Fatalf("report %s: %d", st, code)
		}
	}
	if code := reportUpdate(t, ts, first[0], dep.ID, "failed"); code != 409 {
		t.Fatalf("report after success: %d", code)
	}
	if code := reportUpdate(t, ts, first[0], dep.ID, "exploded"); code != 400 {
		t.Fatalf("unknown status: %d", code)
	}
	second := assigned()
	if len(second) != 3 {
		t.Fatalf("%d devices assigned in stage 2", len(second))
	}
	reportUpdate(t, ts, second[0], dep.ID, "rolled-back")
	reportUpdate(t, ts, second[1], dep.ID, "success")
	reportUpdate(t, ts, second[2], dep.ID, "success")
	var shown api.Deployment
	ts.Do(t, "GET", "/api/v1/deployments/"+dep.ID, "", nil, &shown)
	if shown.State != "halted" || !strings.Contains(shown.Reason, "1 of 4 devices failed") || len(shown.Devices) != 4 || len(shown.Events) < 8 {
		t.Fatalf("after a failed stage: %+v", shown)
	}
	var summary api.Deployment
	ts.Do(t, "GET", "/api/v1/deployments/"+dep.ID+"?devices=false", "", nil, &summary)
	if summary.Devices != nil || summary.Events != nil || summary.Counts["success"] != 3 || summary.Counts["rolled-back"] != 1 {
		t.Fatalf("summary view: %+v", summary)
	}
	if left := assigned(); len(left) != 0 {
		t.Fatalf("halted deployment still assigns to %d devices", len(left))
	}
	var after api.Deployment
	if code := ts.Do(t, "POST", "/api/v1/deployments/"+dep.ID+"/abort", "", api.DeploymentAction{Reason: "bad build"}, &after); code != 200 || after.State != "aborted" {
		t.Fatalf("abort: %d %+v", code, after)
	}
	if code := ts.Do(t, "POST", "/api/v1/deployments/"+dep.ID+"/resume", "", nil, nil); code != 409 {
		t.Fatalf("resume an aborted deployment: %d", code)
	}
	// Maintenance windows are validated.
	if code := ts.Do(t, "PUT", "/api/v1/groups/lab/maintenance-windows", "", []api.MaintenanceWindow{{Days: []string{"mon"}, Start: "01:00", End: "04:00"}}, nil); code != 200 {
		t.Fatalf("set windows: %d", code)
	}
	if code := ts.Do(t, "PUT", "/api/v1/groups/lab/maintenance-windows", "", []api.MaintenanceWindow{{Days: []string{"someday"}, Start: "01:00", End: "04:00"}}, nil); code != 400 {
		t.Fatalf("bad window: %d", code)
	}
	var page api.AuditPage
	ts.Do(t, "GET", "/api/v1/audit", "", nil, &page)
	seen := map[string]bool{}
	for _, e := range page.Entries {
		seen[e.Action] = true
	}
	for _, a := range []string{"release.publish", "deployment.create", "deployment.abort", "group.maintenance_windows"} {
		if !seen[a] {
			t.Errorf("audit lacks %s", a)
		}
	}
}

// doDevice posts an update-status report with the device's certificate.
func doDevice(d *device, body api.UpdateStatus) error {
	return d.client.ReportUpdate(context.Background(), body)
}
