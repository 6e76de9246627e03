package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// yaml.v3 reports a key the target type lacks as "line N: field K not found
// in type pkg.T": a Go type name the operator never wrote.
var unknownField = regexp.MustCompile(`^(line \d+: )field (\S+) not found in type (\S+)$`)

// explainUnknown rewrites those reports as "line N: unknown key K (known
// here: a, b, c)", naming the keys the YAML may use at that place, found
// by walking v's type. Other errors are returned as they are.
func explainUnknown(err error, v any) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	keys := map[string][]string{} // Go type name → its YAML keys
	yamlKeys(reflect.TypeOf(v), keys)
	out := &yaml.TypeError{Errors: make([]string, len(te.Errors))}
	for i, e := range te.Errors {
		out.Errors[i] = e
		if m := unknownField.FindStringSubmatch(e); m != nil {
			if known, ok := keys[m[3]]; ok {
				out.Errors[i] = fmt.Sprintf("%sunknown key %q (known here: %s)", m[1], m[2], strings.Join(known, ", "))
			}
		}
	}
	return out
}

// yamlKeys records the YAML keys of every struct type reachable from t.
func yamlKeys(t reflect.Type, into map[string][]string) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return
	}
	if _, seen := into[t.String()]; seen {
		return
	}
	into[t.String()] = nil
	var keys []string
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			sub := map[string][]string{}
			yamlKeys(f.Type, sub)
			keys = append(keys, sub[f.Type.String()]...)
			for k, v := range sub {
				into[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		keys = append(keys, name)
		yamlKeys(f.Type, into)
	}
	slices.Sort(keys)
	into[t.String()] = keys
}
