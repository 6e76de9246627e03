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

// lineError matches the "line N: " that begins yaml.v3's reports, and the
// "line N, column C: " of ours (Duration), which tells apart values on one
// line (flow style).
var lineError = regexp.MustCompile(`^line (\d+)(?:, column (\d+))?: `)

// nameKeys adds the dotted key path of the value at the reported line to
// errors that give only a line ("line 54: "abc" is not a duration" becomes
// "line 54: limits.request_timeout: …"), so each names the key as the
// validation errors do; prefix (a section's name) begins the path. Reports
// it cannot place are returned as they are.
func nameKeys(err error, data []byte, prefix string) error {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return err
	}
	name := func(msg string) string {
		m := lineError.FindStringSubmatch(msg)
		if m == nil || strings.Contains(msg, "unknown key") {
			return msg
		}
		var at pos
		fmt.Sscan(m[1], &at.line)
		if m[2] != "" {
			fmt.Sscan(m[2], &at.column)
		}
		if path := keyAt(&root, at, prefix); path != "" {
			return m[0] + path + ": " + msg[len(m[0]):]
		}
		return msg
	}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		out := &yaml.TypeError{Errors: make([]string, len(te.Errors))}
		for i, e := range te.Errors {
			out.Errors[i] = name(e)
		}
		return out
	}
	if msg := name(err.Error()); msg != err.Error() {
		return errors.New(msg)
	}
	return err
}

// pos is where a report points: a line, and a column when known (0: any).
type pos struct{ line, column int }

func (p pos) is(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Line == p.line && (p.column == 0 || n.Column == p.column)
}

// keyAt returns the dotted path of the scalar value at in n ("" if none):
// list items are named by index, as validation does (ca.intermediates[0].id).
func keyAt(n *yaml.Node, at pos, path string) string {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if p := keyAt(c, at, path); p != "" {
				return p
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			if at.is(v) {
				return p
			}
			if q := keyAt(v, at, p); q != "" {
				return q
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			if at.is(c) {
				return p
			}
			if q := keyAt(c, at, p); q != "" {
				return q
			}
		}
	}
	return ""
}
