package api

import (
	"encoding/json"
	"reflect"
	"strings"
	"sync"

	"github.com/strongroom-pki/strongroom/core"
)

// fieldNames caches the JSON field names of request types.
var fieldNames sync.Map // reflect.Type → map[string]bool

// exactFieldNames refuses a top-level field that matches one of v's JSON
// field names only without regard to case: encoding/json takes {"CSR": …}
// for "csr", which would make {"Profile": …} and {"profile": …} both
// count, and a document's "unknown fields are refused" untrue. v is the
// struct (pointer) the body was just decoded into.
func exactFieldNames(body []byte, v any) error {
	t := reflect.TypeOf(v)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) != nil {
		return nil // not an object (null): decoding has judged it
	}
	known := jsonNames(t)
	for name := range fields {
		if !known[name] {
			return core.Errorf(core.KindMalformed, "the body is not valid JSON for this request: unknown field %q (field names are case-sensitive)", name)
		}
	}
	return nil
}

func jsonNames(t reflect.Type) map[string]bool {
	if m, ok := fieldNames.Load(t); ok {
		return m.(map[string]bool)
	}
	m := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			for n := range jsonNames(f.Type) {
				m[n] = true
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = true
	}
	fieldNames.Store(t, m)
	return m
}
