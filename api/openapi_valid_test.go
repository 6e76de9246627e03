package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"testing"

	"github.com/pb33f/jsonschema/v6"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi/datamodel"
)

// openAPIValidation validates doc against the OpenAPI 3.1 specification's
// JSON Schema (libopenapi-validator), resolves every reference
// (libopenapi's model), and checks every Schema object against the JSON
// Schema 2020-12 meta-schema, which the specification's schema leaves
// alone. It returns the findings, one line each.
func openAPIValidation(t testing.TB, doc []byte) []string {
	t.Helper()
	var out []string
	cfg := datamodel.NewDocumentConfiguration()
	cfg.Logger = slog.New(slog.DiscardHandler) // its findings come back as errors
	d, err := libopenapi.NewDocumentWithConfiguration(doc, cfg)
	if err != nil {
		return []string{"libopenapi: " + err.Error()}
	}
	if v := d.GetSpecInfo().Version; v != "3.1.0" {
		out = append(out, "version "+v+", want 3.1.0")
	}
	if _, err := d.BuildV3Model(); err != nil {
		out = append(out, "building the model: "+err.Error())
	}
	v, errs := validator.NewValidator(d)
	if len(errs) > 0 {
		for _, err := range errs {
			out = append(out, "validator: "+err.Error())
		}
		return out
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, ve := range verrs {
			out = append(out, ve.Message+": "+ve.Reason)
			for _, f := range ve.SchemaValidationErrors {
				out = append(out, fmt.Sprintf("  %s: %s", f.FieldPath, f.Reason))
			}
		}
	}
	return append(out, schemaDialectProblems(t, doc)...)
}

// schemaDialectProblems gathers every Schema object of the document into
// the $defs of one JSON Schema 2020-12 document (references to
// #/components/schemas/X rewritten to #/$defs/X) and compiles each: the
// compiler checks the whole against the 2020-12 meta-schema, and that every
// reference resolves.
func schemaDialectProblems(t testing.TB, doc []byte) []string {
	t.Helper()
	var d oasDoc
	if err := json.Unmarshal(doc, &d); err != nil {
		return []string{err.Error()}
	}
	defs := map[string]any{}
	if comps, ok := d["components"].(map[string]any); ok {
		if ss, ok := comps["schemas"].(map[string]any); ok {
			for n, s := range ss {
				defs[n] = s
			}
		}
	}
	walk(map[string]any(d), "", func(at string, m map[string]any) {
		if strings.HasPrefix(at, "/components/schemas") || strings.Contains(at, "/schema/") {
			return
		}
		if s, ok := m["schema"]; ok {
			defs["inline"+strings.NewReplacer("/", "_", "~", "_", "{", "", "}", "").Replace(at)] = s
		}
	})
	b, err := json.Marshal(map[string]any{"$schema": "https://json-schema.org/draft/2020-12/schema", "$defs": defs})
	if err != nil {
		return []string{err.Error()}
	}
	b = bytes.ReplaceAll(b, []byte(`"#/components/schemas/`), []byte(`"#/$defs/`))
	root, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return []string{err.Error()}
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	const url = "mem:///openapi-schemas.json"
	if err := c.AddResource(url, root); err != nil {
		return []string{err.Error()}
	}
	names := make([]string, 0, len(defs))
	for n := range defs {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []string
	for _, n := range names {
		if _, err := c.Compile(url + "#/$defs/" + n); err != nil {
			if strings.Contains(err.Error(), "metaschema") {
				// The whole document failed the meta-schema: once is enough.
				return append(out, err.Error())
			}
			out = append(out, "schema "+n+": "+err.Error())
		}
	}
	return out
}

func TestOpenAPIValid(t *testing.T) {
	for _, p := range openAPIValidation(t, openAPIDocument) {
		t.Error(p)
	}
}

// TestOpenAPIValidatorCatchesMistakes: the validator is not a rubber
// stamp. Each mistake here is one the document once made, or a 3.0 habit
// that 3.1 (JSON Schema 2020-12) refuses.
func TestOpenAPIValidatorCatchesMistakes(t *testing.T) {
	for _, c := range []struct {
		name, want string // want: in what the validation says
		edit       func(d oasDoc)
	}{
		{"3.0 with mutualTLS", "securitySchemes.mtls", func(d oasDoc) { d["openapi"] = "3.0.3" }},
		{"description on a Media Type object", "application~1pkcs10'].description", func(d oasDoc) {
			op(d, "post", "/certificates/renew")["requestBody"].(map[string]any)["content"].(map[string]any)["application/pkcs10"].(map[string]any)["description"] = "DER or PEM"
		}},
		{"unknown security scheme type", "securitySchemes.mtls", func(d oasDoc) {
			d["components"].(map[string]any)["securitySchemes"].(map[string]any)["mtls"].(map[string]any)["type"] = "mtls"
		}},
		{"dangling reference", "#/components/responses/Nope", func(d oasDoc) {
			responses(d, "get", "/issuers")["403"] = map[string]any{"$ref": "#/components/responses/Nope"}
		}},
		{"3.0 exclusiveMinimum", "bytes/exclusiveMinimum': got boolean, want number", func(d oasDoc) {
			schema(d, "RandomRequest")["properties"].(map[string]any)["bytes"].(map[string]any)["exclusiveMinimum"] = true
		}},
		{"required as a boolean", "HashRequest/required': got boolean, want array", func(d oasDoc) { schema(d, "HashRequest")["required"] = true }},
		{"response without description", "204", func(d oasDoc) {
			delete(responses(d, "delete", "/keys/{id}")["204"].(map[string]any), "description")
		}},
	} {
		t.Run(c.name, func(t *testing.T) { wantFinding(t, openAPIValidation, c.edit, c.want) })
	}
}
