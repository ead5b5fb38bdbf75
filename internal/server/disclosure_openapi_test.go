package server

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/bulwark-iot/bulwark/internal/disclosure"
)

// TestOpenAPIDisclosureSchemas keeps the disclosure and product schemas
// of openapi.json in step with their Go types, as TestOpenAPIInSync does
// for the types of internal/api.
func TestOpenAPIDisclosureSchemas(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal(openAPISpec, &doc); err != nil {
		t.Fatal(err)
	}
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	for _, c := range []struct {
		typ      reflect.Type
		response bool
		schema   string
	}{
		{reflect.TypeFor[disclosure.Submission](), false, "Submission"},
		{reflect.TypeFor[disclosure.Receipt](), true, "Receipt"},
		{reflect.TypeFor[disclosure.TimelineEntry](), true, "TimelineEntry"},
		{reflect.TypeFor[disclosure.Report](), true, "Report"},
		{reflect.TypeFor[disclosure.ReportList](), true, "ReportList"},
		{reflect.TypeFor[disclosure.Status](), true, "Status"},
		{reflect.TypeFor[disclosure.TransitionRequest](), false, "TransitionRequest"},
		{reflect.TypeFor[disclosure.StatusEntry](), true, "StatusEntry"},
		{reflect.TypeFor[disclosure.Product](), true, "Product"},
		{reflect.TypeFor[disclosure.Message](), false, "Message"},
	} {
		sch, ok := schemas[c.schema].(map[string]any)
		if !ok {
			t.Errorf("components.schemas has no %s for %s", c.schema, c.typ)
			continue
		}
		openAPICheckSchema(t, c.schema, sch, c.typ, c.response)
	}
}
