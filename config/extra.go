package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"

	"gopkg.in/yaml.v3"
)

// Extra holds the sections whose schema belongs to the package that uses
// them, so each field is documented once, next to the code that reads it:
//
//	policy:    ra.Policy     (names, IP ranges, wildcards, key types, lifetimes, profile access, renewal)
//	profiles:  []ca.Profile  (x509util templates added to or overriding the built-in profiles; an override keeps what it leaves out)
//	issuance:  the pipeline's URLs and lint exclusions (see cmd/ca)
//	api:       REST API settings: client certificate scopes, issue_per_hour, key service limits (see cmd/ca)
//	acme:      ACME endpoints (see cmd/ca)
//	ocsp, crl: revocation settings (see cmd/ca)
//
// An absent section means every default. Each section is decoded as
// strictly as the rest of the file when the CA starts (see Section.Decode).
type Extra struct {
	Policy   Section `yaml:"policy,omitempty"`
	Profiles Section `yaml:"profiles,omitempty"`
	Issuance Section `yaml:"issuance,omitempty"`
	API      Section `yaml:"api,omitempty"`
	ACME     Section `yaml:"acme,omitempty"`
	OCSP     Section `yaml:"ocsp,omitempty"`
	CRL      Section `yaml:"crl,omitempty"`
}

func (e *Extra) applyDefaults(c *Config) {}

func (e *Extra) validate(v *validator) {}

// Section is a part of the file kept as YAML until the package that owns
// its schema decodes it.
type Section struct {
	node *yaml.Node
}

func (s *Section) UnmarshalYAML(n *yaml.Node) error {
	s.node = n
	return nil
}

func (s Section) MarshalYAML() (any, error) { return s.node, nil }

func (s Section) IsZero() bool { return s.node == nil }

// Set replaces the section's content with v's YAML encoding.
func (s *Section) Set(v any) error {
	n := &yaml.Node{}
	if err := n.Encode(v); err != nil {
		return err
	}
	s.node = n
	return nil
}

// Decode decodes the section into v strictly: a key v does not have is an
// error naming the key and line, prefixed with the section's name. An
// absent section leaves v untouched.
func (s Section) Decode(name string, v any) error {
	if s.node == nil {
		return nil
	}
	data, err := yaml.Marshal(s.node)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		err = nameKeys(explainUnknown(err, v), data, name)
		return fmt.Errorf("config section %s: %w", name, fileLines(err, data, s.node))
	}
	return nil
}

// fileLines rewrites the "line N" of err, counted in data (the section as
// re-encoded for decoding), as the line of the same node in the file (orig
// holds the file's positions): the re-encoded tree has the same shape.
func fileLines(err error, data []byte, orig *yaml.Node) error {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil || len(root.Content) != 1 {
		return err
	}
	lines := map[int]int{}
	var walk func(a, b *yaml.Node)
	walk = func(a, b *yaml.Node) {
		if _, seen := lines[a.Line]; !seen {
			lines[a.Line] = b.Line
		}
		for i := range min(len(a.Content), len(b.Content)) {
			walk(a.Content[i], b.Content[i])
		}
	}
	walk(root.Content[0], orig)
	msg := lineRef.ReplaceAllStringFunc(err.Error(), func(ref string) string {
		var n int
		fmt.Sscanf(ref, "line %d", &n)
		if l, ok := lines[n]; ok {
			return fmt.Sprintf("line %d", l)
		}
		return ref
	})
	return errors.New(msg)
}

var lineRef = regexp.MustCompile(`\bline \d+`)
