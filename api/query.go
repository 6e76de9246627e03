package api

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/strongroom-pki/strongroom/core"
)

// queryParams lists, by "METHOD /path" (gin's :param form, relative to
// /api/v1), the query parameters the OpenAPI document gives an operation.
// A parameter it does not list is refused (knownQuery): a misspelt filter
// (?expiring_within= for ?expiring_before=) would otherwise list every
// certificate, and a script revoking what it lists would revoke them all.
// Bodies are already strict (unknown JSON fields are refused).
func queryParams(doc []byte) (map[string][]string, error) {
	var d struct {
		Paths map[string]map[string]struct {
			Parameters []struct {
				Name string `json:"name"`
				In   string `json:"in"`
			} `json:"parameters"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("api: reading the OpenAPI document: %w", err)
	}
	out := map[string][]string{}
	for path, ops := range d.Paths {
		for method, op := range ops {
			key := strings.ToUpper(method) + " " + ginPath(path)
			out[key] = []string{}
			for _, p := range op.Parameters {
				if p.In == "query" {
					out[key] = append(out[key], p.Name)
				}
			}
		}
	}
	return out, nil
}

// ginPath turns /certificates/{serial} into /certificates/:serial.
func ginPath(openAPIPath string) string {
	segs := strings.Split(openAPIPath, "/")
	for i, s := range segs {
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
			segs[i] = ":" + s[1:len(s)-1]
		}
	}
	return strings.Join(segs, "/")
}

// knownQuery refuses query parameters the operation does not document, and
// documented ones given twice, with a 400 problem that names them (and what
// the operation takes). base is the
// prefix the routes are mounted under (/api/v1).
func (a *API) knownQuery(base string) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.URL.RawQuery == "" {
			c.Next()
			return
		}
		allowed, ok := a.query[c.Request.Method+" "+strings.TrimPrefix(c.FullPath(), base)]
		if !ok {
			c.Next() // an undocumented route: TestOpenAPIMatchesRoutes fails on it
			return
		}
		var unknown, repeated []string
		for name, vals := range c.Request.URL.Query() {
			if !slices.Contains(allowed, name) {
				unknown = append(unknown, fmt.Sprintf("%q", name))
			} else if len(vals) > 1 {
				repeated = append(repeated, fmt.Sprintf("%q", name))
			}
		}
		// Every parameter takes one value: ?status=valid&status=revoked
		// would otherwise filter by the first and drop the second unseen.
		if len(unknown) == 0 && len(repeated) > 0 {
			slices.Sort(repeated)
			a.fail(c, core.Errorf(core.KindMalformed, "query parameter %s given more than once; each takes one value",
				strings.Join(repeated, ", ")))
			return
		}
		if len(unknown) == 0 {
			c.Next()
			return
		}
		slices.Sort(unknown)
		takes := "no query parameters"
		if len(allowed) > 0 {
			takes = "only " + strings.Join(allowed, ", ")
		}
		a.fail(c, core.Errorf(core.KindMalformed, "unknown query parameter %s: %s %s takes %s",
			strings.Join(unknown, ", "), c.Request.Method, c.FullPath(), takes))
	}
}

// basePath is the prefix r mounts routes under.
func basePath(r gin.IRouter) string {
	if b, ok := r.(interface{ BasePath() string }); ok {
		return strings.TrimSuffix(b.BasePath(), "/")
	}
	return ""
}
