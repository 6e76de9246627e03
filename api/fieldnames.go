package api

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"github.com/strongroom-pki/strongroom/core"
)

// fieldNames caches the JSON field names of request types.
var fieldNames sync.Map // reflect.Type → map[string]bool

// exactFieldNames refuses a member named twice in any object of the body,
// and a top-level field that matches one of v's JSON field names only
// without regard to case. encoding/json lets the last of {"a":1,"a":2}
// win, and takes {"CSR": …} for "csr": either would make two members
// count as one, so that what the service acted on is not what another
// reader of the same body sees (RFC 8259 §4: names should be unique), and
// a document's "unknown fields are refused" untrue. v is the struct
// (pointer) the body was just decoded into.
func exactFieldNames(body []byte, v any) error {
	if err := uniqueMembers(body); err != nil {
		return err
	}
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

// uniqueMembers refuses a JSON body (already known to be valid) in which
// an object names a member twice, naming it by its path.
func uniqueMembers(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // a number is skipped, never converted
	return uniqueIn(dec, "")
}

// uniqueIn reads one value; at is its path ("" for the body itself).
func uniqueIn(dec *json.Decoder, at string) error {
	tok, err := dec.Token()
	if err != nil {
		return notJSON(err)
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return notJSON(err)
			}
			name := k.(string)
			if at != "" {
				name = at + "." + name
			}
			if seen[k.(string)] {
				return core.Errorf(core.KindMalformed, "the body is not valid JSON for this request: member %q appears more than once", name)
			}
			seen[k.(string)] = true
			if err := uniqueIn(dec, name); err != nil {
				return err
			}
		}
	case json.Delim('['):
		for i := 0; dec.More(); i++ {
			if err := uniqueIn(dec, at+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
	default:
		return nil
	}
	if _, err := dec.Token(); err != nil { // the closing delimiter
		return notJSON(err)
	}
	return nil
}

func notJSON(err error) error {
	return core.Wrap(core.KindMalformed, err, "the body is not valid JSON")
}
