package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
)

// The rules below keep api/openapi.json a valid OpenAPI 3.1 document and
// keep it saying what the server does. openAPIProblems checks the document
// alone; TestOpenAPIStatusesMatchServer asks a running API.
// (TestOpenAPIMatchesRoutes, in api_test.go, keeps paths and methods equal
// to the routes; openapi_valid_test.go runs a full OpenAPI 3.1 validator.)

// oasDoc is the document as generic JSON.
type oasDoc map[string]any

func parseOAS(t testing.TB, b []byte) oasDoc {
	t.Helper()
	var d oasDoc
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return d
}

// oasOp is one operation.
type oasOp struct {
	method, path string
	op           map[string]any
}

func (o oasOp) String() string { return strings.ToUpper(o.method) + " " + o.path }

var oasMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

func (d oasDoc) operations() []oasOp {
	var out []oasOp
	paths, _ := d["paths"].(map[string]any)
	for p, item := range paths {
		ops, _ := item.(map[string]any)
		for m, op := range ops {
			if o, ok := op.(map[string]any); ok && slices.Contains(oasMethods, m) {
				out = append(out, oasOp{m, p, o})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// resolve follows a local reference ("#/components/...").
func (d oasDoc) resolve(ref string) (any, error) {
	if !strings.HasPrefix(ref, "#/") {
		return nil, fmt.Errorf("%q is not a local reference", ref)
	}
	var cur any = map[string]any(d)
	for _, seg := range strings.Split(ref[2:], "/") {
		seg = strings.ReplaceAll(strings.ReplaceAll(seg, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%q does not resolve", ref)
		}
		if cur, ok = m[seg]; !ok {
			return nil, fmt.Errorf("%q does not resolve", ref)
		}
	}
	return cur, nil
}

// deref follows references until an object that is not one.
func (d oasDoc) deref(v any) map[string]any {
	for range 10 {
		m, _ := v.(map[string]any)
		ref, ok := m["$ref"].(string)
		if !ok {
			return m
		}
		if v, _ = d.resolve(ref); v == nil {
			return nil
		}
	}
	return nil
}

// security is the operation's security requirement (its own, else the
// document's).
func (d oasDoc) security(o oasOp) []any {
	if s, ok := o.op["security"]; ok {
		l, _ := s.([]any)
		return l
	}
	l, _ := d["security"].([]any)
	return l
}

func (d oasDoc) response(o oasOp, code string) map[string]any {
	rs, _ := o.op["responses"].(map[string]any)
	if r, ok := rs[code]; ok {
		return d.deref(r)
	}
	return nil
}

// header is the named header of a response, resolved (nil: not declared).
func (d oasDoc) header(resp map[string]any, name string) map[string]any {
	hs, _ := resp["headers"].(map[string]any)
	for n, h := range hs {
		if strings.EqualFold(n, name) {
			return d.deref(h)
		}
	}
	return nil
}

func (d oasDoc) takesHeader(o oasOp, name string) bool {
	ps, _ := o.op["parameters"].([]any)
	for _, p := range ps {
		if pm := d.deref(p); pm["in"] == "header" && strings.EqualFold(fmt.Sprint(pm["name"]), name) {
			return true
		}
	}
	return false
}

// walk calls f on every JSON object in v with its JSON pointer.
func walk(v any, at string, f func(at string, m map[string]any)) {
	switch x := v.(type) {
	case map[string]any:
		f(at, x)
		for k, c := range x {
			walk(c, at+"/"+strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1"), f)
		}
	case []any:
		for i, c := range x {
			walk(c, fmt.Sprintf("%s/%d", at, i), f)
		}
	}
}

// mediaTypeObjects lists every Media Type object: the values of each
// content map of request bodies, responses, parameters and headers.
func (d oasDoc) mediaTypeObjects() map[string]map[string]any {
	out := map[string]map[string]any{}
	walk(map[string]any(d), "", func(at string, m map[string]any) {
		if strings.Contains(at, "/schemas/") || strings.HasSuffix(at, "/schema") || strings.Contains(at, "/schema/") {
			return
		}
		c, ok := m["content"].(map[string]any)
		if !ok {
			return
		}
		for mt, v := range c {
			if o, ok := v.(map[string]any); ok {
				out[at+"/content/"+mt] = o
			}
		}
	})
	return out
}

// schemaKeywords calls f on every keyword of every Schema object
// (components.schemas and each schema of a media type, parameter or
// header), recursing into subschemas; property names are not keywords.
func (d oasDoc) schemaKeywords(f func(at, keyword string)) {
	var visit func(at string, v any)
	visit = func(at string, v any) {
		switch x := v.(type) {
		case []any:
			for i, c := range x {
				visit(fmt.Sprintf("%s/%d", at, i), c)
			}
		case map[string]any:
			for k, c := range x {
				f(at, k)
				switch k {
				case "properties", "patternProperties", "$defs", "dependentSchemas":
					if m, ok := c.(map[string]any); ok {
						for n, s := range m {
							visit(at+"/"+k+"/"+n, s)
						}
					}
				case "enum", "const", "examples", "default", "required", "description", "title", "$ref", "type", "format", "pattern":
				default:
					visit(at+"/"+k, c)
				}
			}
		}
	}
	if comps, ok := d["components"].(map[string]any); ok {
		if ss, ok := comps["schemas"].(map[string]any); ok {
			for n, s := range ss {
				visit("/components/schemas/"+n, s)
			}
		}
	}
	walk(map[string]any(d), "", func(at string, m map[string]any) {
		if strings.HasPrefix(at, "/components/schemas") {
			return
		}
		if s, ok := m["schema"].(map[string]any); ok {
			visit(at+"/schema", s)
		}
	})
}

// openAPIProblems returns every broken rule, one line each.
func openAPIProblems(t testing.TB, b []byte) []string {
	d := parseOAS(t, b)
	var out []string
	bad := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }

	// The version, and what 3.1 allows where 3.0 tools let things slide.
	if d["openapi"] != "3.1.0" {
		bad("openapi is %v, want 3.1.0", d["openapi"])
	}
	if comps, ok := d["components"].(map[string]any); ok {
		ss, _ := comps["securitySchemes"].(map[string]any)
		for n, s := range ss {
			typ := fmt.Sprint(d.deref(s)["type"])
			if !slices.Contains([]string{"apiKey", "http", "mutualTLS", "oauth2", "openIdConnect"}, typ) {
				bad("securityScheme %s: type %q is not an OpenAPI 3.1 type", n, typ)
			}
		}
	}
	for at, mt := range d.mediaTypeObjects() {
		for k := range mt {
			if !slices.Contains([]string{"schema", "example", "examples", "encoding"}, k) && !strings.HasPrefix(k, "x-") {
				bad("%s: a Media Type object has no %q (move it to the request body or response)", at, k)
			}
		}
	}
	walk(map[string]any(d), "", func(at string, m map[string]any) {
		ref, ok := m["$ref"].(string)
		if !ok {
			return
		}
		if _, err := d.resolve(ref); err != nil {
			bad("%s: %v", at, err)
		}
		// Outside schemas a Reference object has $ref, summary, description.
		if !strings.Contains(at, "/schema") {
			for k := range m {
				if k != "$ref" && k != "summary" && k != "description" {
					bad("%s: a Reference object has no %q", at, k)
				}
			}
		}
	})
	d.schemaKeywords(func(at, kw string) {
		switch kw {
		case "nullable":
			bad("%s: nullable is OpenAPI 3.0; use type [..., \"null\"]", at)
		case "example":
			bad("%s: example in a schema is OpenAPI 3.0; use examples (an array)", at)
		}
	})

	// Statuses and headers.
	info, _ := d["info"].(map[string]any)
	desc, _ := info["description"].(string)
	for _, want := range []string{"HEAD", "405", "Allow", "413", "Content-Type", "case-sensitive"} {
		if !strings.Contains(desc, want) {
			bad("info.description does not mention %s", want)
		}
	}
	for _, o := range d.operations() {
		rs, _ := o.op["responses"].(map[string]any)
		if o.method == "head" {
			bad("%s: HEAD is described once in info.description, not per operation", o)
		}
		if _, ok := rs["405"]; ok {
			bad("%s: 405 is described once in info.description, not per operation", o)
		}
		if o.String() != "GET /openapi.json" {
			// Not /openapi.json: it is registered outside the group that
			// limits bodies and checks query parameters, and reads nothing
			// (TestOpenAPIStatusesMatchServer says whether that changes).
			for _, code := range []string{"400", "413", "503"} {
				if rs[code] == nil {
					bad("%s lists no %s", o, code)
				}
			}
		}
		if len(d.security(o)) > 0 {
			if r := d.response(o, "401"); r == nil {
				bad("%s needs credentials but lists no 401", o)
			} else if h := d.header(r, "WWW-Authenticate"); h == nil || h["required"] != true {
				bad("%s: its 401 does not declare WWW-Authenticate (required)", o)
			}
		} else if rs["401"] != nil {
			bad("%s needs no credentials but lists 401", o)
		}
		for code, raw := range rs {
			r := d.deref(raw)
			if r == nil {
				bad("%s %s: unresolvable response", o, code)
				continue
			}
			if len(code) == 3 && code[0] >= '4' {
				c, _ := r["content"].(map[string]any)
				pj, _ := c["application/problem+json"].(map[string]any)
				s, _ := pj["schema"].(map[string]any)
				if len(c) != 1 || s["$ref"] != "#/components/schemas/Problem" {
					bad("%s %s: not an application/problem+json Problem", o, code)
				}
			}
		}
		if r := d.response(o, "201"); r != nil {
			if h := d.header(r, "Location"); h == nil || h["required"] != true {
				bad("%s: its 201 does not declare Location (required)", o)
			}
		}
		for _, code := range []string{"429", "503"} {
			if r := d.response(o, code); r != nil {
				if h := d.header(r, "Retry-After"); h == nil || h["required"] != true {
					bad("%s: its %s does not declare Retry-After (required)", o, code)
				}
			}
		}
		// Idempotency-Key (idempotency.go): replays say so, and a retry
		// while the first attempt runs is 409 with Retry-After. Renewal
		// uses the same machinery with a key of its own.
		if d.takesHeader(o, idemHeader) || o.String() == "POST /certificates/renew" {
			if r := d.response(o, "201"); r == nil || d.header(r, "Idempotent-Replayed") == nil {
				bad("%s: its 201 does not declare Idempotent-Replayed", o)
			}
			if r := d.response(o, "409"); r == nil || d.header(r, "Retry-After") == nil {
				bad("%s: its 409 (still being processed) does not declare Retry-After", o)
			}
		}
	}
	// Content negotiation and body types (negotiate.go, certs.go, renew.go).
	for _, c := range []struct{ op, code string }{
		{"GET /certificates/{serial}", "406"}, {"POST /certificates", "406"}, {"POST /certificates/renew", "406"},
		{"POST /certificates", "415"}, {"POST /certificates/renew", "415"}, {"POST /certificates/dry-run", "415"},
		{"POST /certificates/{serial}/revoke", "415"}, {"POST /keys", "415"}, {"POST /keys/{id}/encrypt", "415"}, {"POST /random", "415"},
		{"POST /certificates", "429"},
	} {
		found := false
		for _, o := range d.operations() {
			if o.String() == c.op {
				found = true
				if d.response(o, c.code) == nil {
					bad("%s lists no %s", o, c.code)
				}
				if c.code == "406" && !strings.Contains(fmt.Sprint(o.op["description"]), "Accept") {
					bad("%s: its description does not say how Accept is negotiated", o)
				}
			}
		}
		if !found {
			bad("no operation %s", c.op)
		}
	}
	sort.Strings(out)
	return out
}

func TestOpenAPIRules(t *testing.T) {
	for _, p := range openAPIProblems(t, openAPIDocument) {
		t.Error(p)
	}
}

// TestOpenAPIRulesCatchMistakes breaks the document one way at a time:
// each rule must notice.
func TestOpenAPIRulesCatchMistakes(t *testing.T) {
	for _, c := range []struct {
		name, want string
		edit       func(d oasDoc)
	}{
		{"3.0", "want 3.1.0", func(d oasDoc) { d["openapi"] = "3.0.3" }},
		{"security type", "not an OpenAPI 3.1 type", func(d oasDoc) {
			d["components"].(map[string]any)["securitySchemes"].(map[string]any)["mtls"].(map[string]any)["type"] = "mtls"
		}},
		{"media type description", "Media Type object has no \"description\"", func(d oasDoc) {
			op(d, "post", "/certificates")["requestBody"].(map[string]any)["content"].(map[string]any)["application/pkcs10"].(map[string]any)["description"] = "DER"
		}},
		{"dangling ref", "does not resolve", func(d oasDoc) {
			op(d, "get", "/issuers")["responses"].(map[string]any)["403"] = map[string]any{"$ref": "#/components/responses/Nope"}
		}},
		{"nullable", "nullable is OpenAPI 3.0", func(d oasDoc) {
			schema(d, "Key")["properties"].(map[string]any)["label"].(map[string]any)["nullable"] = true
		}},
		{"example", "use examples", func(d oasDoc) {
			schema(d, "JWTRequest")["properties"].(map[string]any)["ttl"].(map[string]any)["example"] = "15m"
		}},
		{"no 413", "GET /issuers lists no 413", func(d oasDoc) { delete(responses(d, "get", "/issuers"), "413") }},
		{"no 400", "DELETE /keys/{id} lists no 400", func(d oasDoc) { delete(responses(d, "delete", "/keys/{id}"), "400") }},
		{"no 503", "POST /hash lists no 503", func(d oasDoc) { delete(responses(d, "post", "/hash"), "503") }},
		{"no 401", "GET /keys needs credentials but lists no 401", func(d oasDoc) { delete(responses(d, "get", "/keys"), "401") }},
		{"401 without credentials", "GET /jwks/{id} needs no credentials but lists 401", func(d oasDoc) {
			responses(d, "get", "/jwks/{id}")["401"] = map[string]any{"$ref": "#/components/responses/Unauthorized"}
		}},
		{"no WWW-Authenticate", "does not declare WWW-Authenticate", func(d oasDoc) {
			delete(component(d, "responses", "Unauthorized"), "headers")
		}},
		{"no Location", "POST /keys/import: its 201 does not declare Location", func(d oasDoc) {
			delete(responses(d, "post", "/keys/import")["201"].(map[string]any), "headers")
		}},
		{"no Retry-After on 429", "its 429 does not declare Retry-After", func(d oasDoc) {
			delete(component(d, "responses", "TooManyRequests"), "headers")
		}},
		{"no Retry-After on 503", "its 503 does not declare Retry-After", func(d oasDoc) {
			delete(component(d, "responses", "Unavailable"), "headers")
		}},
		{"no Retry-After on 409", "its 409 (still being processed) does not declare Retry-After", func(d oasDoc) {
			responses(d, "post", "/certificates")["409"] = map[string]any{"$ref": "#/components/responses/Conflict"}
		}},
		{"no Idempotent-Replayed", "POST /certificates/renew: its 201 does not declare Idempotent-Replayed", func(d oasDoc) {
			delete(responses(d, "post", "/certificates/renew")["201"].(map[string]any)["headers"].(map[string]any), "Idempotent-Replayed")
		}},
		{"no 406", "GET /certificates/{serial} lists no 406", func(d oasDoc) { delete(responses(d, "get", "/certificates/{serial}"), "406") }},
		{"no 415", "POST /certificates/renew lists no 415", func(d oasDoc) { delete(responses(d, "post", "/certificates/renew"), "415") }},
		{"405 per operation", "405 is described once", func(d oasDoc) {
			responses(d, "get", "/issuers")["405"] = map[string]any{"$ref": "#/components/responses/BadRequest"}
		}},
		{"no HEAD in info", "does not mention HEAD", func(d oasDoc) {
			info := d["info"].(map[string]any)
			info["description"] = strings.ReplaceAll(info["description"].(string), "HEAD", "head")
		}},
		{"not a problem", "not an application/problem+json Problem", func(d oasDoc) {
			responses(d, "get", "/issuers")["403"] = map[string]any{"description": "no"}
		}},
	} {
		t.Run(c.name, func(t *testing.T) { wantFinding(t, openAPIProblems, c.edit, c.want) })
	}
}

func op(d oasDoc, method, path string) map[string]any {
	return d["paths"].(map[string]any)[path].(map[string]any)[method].(map[string]any)
}

func responses(d oasDoc, method, path string) map[string]any {
	return op(d, method, path)["responses"].(map[string]any)
}

func component(d oasDoc, kind, name string) map[string]any {
	return d["components"].(map[string]any)[kind].(map[string]any)[name].(map[string]any)
}

func schema(d oasDoc, name string) map[string]any { return component(d, "schemas", name) }

// TestOpenAPIStatusesMatchServer asks a running API (no key service, so
// the key routes answer 503) for each documented operation in a few ways
// and checks each answer's status is documented for the operation, and
// that what the document promises for every operation happens: an unknown
// query parameter is 400 and an oversized body 413 exactly where it says,
// a request without credentials is 401 (with WWW-Authenticate) exactly
// where it says, and 503s carry Retry-After.
func TestOpenAPIStatusesMatchServer(t *testing.T) {
	const limit = 1 << 10
	e := newEnv(t, nil, func(o *Options) { o.MaxBodyBytes = limit })
	d := parseOAS(t, openAPIDocument)
	big := []byte(`{"pad":"` + strings.Repeat("x", 2*limit) + `"}`)
	for _, o := range d.operations() {
		path := strings.NewReplacer("{serial}", "01", "{id}", "nokey").Replace(o.path)
		method := strings.ToUpper(o.method)
		documented := func(code int) bool { return d.response(o, fmt.Sprint(code)) != nil }
		check := func(what string, resp *http.Response, body []byte) {
			t.Helper()
			if !documented(resp.StatusCode) {
				t.Errorf("%s %s: %d %s, which the document does not list", o, what, resp.StatusCode, body)
			}
			if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
				t.Errorf("%s %s: 503 without Retry-After", o, what)
			}
		}

		resp, body := e.do(t, method, path+"?zz_not_a_parameter=1", "", "application/json", nil)
		check("with an unknown query parameter", resp, body)
		if got := resp.StatusCode == http.StatusBadRequest; got != documented(400) {
			t.Errorf("%s with an unknown query parameter: %d, but the document lists 400: %v", o, resp.StatusCode, documented(400))
		}

		resp, body = e.do(t, method, path, "", "application/json", big)
		check("with an oversized body", resp, body)
		if got := resp.StatusCode == http.StatusRequestEntityTooLarge; got != documented(413) {
			t.Errorf("%s with an oversized body: %d, but the document lists 413: %v", o, resp.StatusCode, documented(413))
		}

		resp, body = e.do(t, method, path, "", "application/json", nil)
		check("without credentials", resp, body)
		if got, want := resp.StatusCode == http.StatusUnauthorized, len(d.security(o)) > 0; got != want {
			t.Errorf("%s without credentials: %d; the document says it needs credentials: %v", o, resp.StatusCode, want)
		}
		if resp.StatusCode == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") != `Bearer realm="strongroom"` {
			t.Errorf("%s: 401 with WWW-Authenticate %q", o, resp.Header.Get("WWW-Authenticate"))
		}

		resp, body = e.do(t, method, path, "admin", "application/json", []byte(`{}`))
		check("as admin", resp, body)
	}
}

// wantFinding breaks a copy of the document with edit and fails unless
// check's findings mention want: a rule or validator that notices nothing
// is not checking.
func wantFinding(t *testing.T, check func(testing.TB, []byte) []string, edit func(oasDoc), want string) {
	t.Helper()
	d := parseOAS(t, openAPIDocument)
	edit(d)
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	findings := check(t, b)
	if !strings.Contains(strings.Join(findings, "\n"), want) {
		t.Fatalf("no finding mentions %q; got %q", want, findings)
	}
}

// TestOpenAPISchemasListFields: every JSON field a request or response type
// has is a property of its schema, so a field added to the code (an
// issuer's status, say) cannot go undocumented.
func TestOpenAPISchemasListFields(t *testing.T) {
	d := parseOAS(t, openAPIDocument)
	for name, v := range map[string]any{
		"Issuer": IssuerResponse{}, "Certificate": CertificateResponse{}, "CertificateList": ListResponse{},
		"DryRun": DryRunResponse{}, "IssueRequest": IssueRequest{}, "RevokeRequest": RevokeRequest{}, "RenewRequest": RenewRequest{},
		"Key": KeyResponse{}, "DataKey": DataKeyResponse{}, "ExportedKey": ExportKeyResponse{},
	} {
		props, _ := schema(d, name)["properties"].(map[string]any)
		rt := reflect.TypeOf(v)
		for i := range rt.NumField() {
			tag, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
			if tag == "" || tag == "-" {
				continue
			}
			if _, ok := props[tag]; !ok {
				t.Errorf("schema %s lacks %s's field %q", name, rt.Name(), tag)
			}
		}
	}
}
