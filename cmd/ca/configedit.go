package main

import (
	"errors"
	"fmt"
	"os"

	"gopkg.in/yaml.v3"

	"github.com/strongroom-pki/strongroom/config"
)

// editConfig has edit change the top mapping of the YAML configuration at
// path and writes the file back atomically, keeping the rest of it
// (comments included) as the operator wrote it; an edit that leaves a
// configuration that does not parse is not written. `ca issuer add`,
// `ca issuer default`, `ca issuer install` and `ca hsm rekey` edit it.
func editConfig(path string, edit func(top *yaml.Node) error) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm() // an operator's 0600 stays 0600
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return err
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return errors.New("the configuration is not a YAML mapping")
	}
	if err := edit(doc.Content[0]); err != nil {
		return err
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		return err
	}
	if _, err := config.Parse(out); err != nil {
		return fmt.Errorf("the edited configuration does not parse: %w", err)
	}
	return writeFileAtomic(path, out, mode)
}

// mappingOf is the mapping under key in m, added if m has none.
func mappingOf(m *yaml.Node, key string) *yaml.Node {
	if v := mappingValue(m, key); v != nil && v.Kind == yaml.MappingNode {
		return v
	}
	v := &yaml.Node{Kind: yaml.MappingNode}
	setNode(m, key, v)
	return v
}

func setScalar(m *yaml.Node, key, value string) {
	if v := mappingValue(m, key); v != nil && v.Kind == yaml.ScalarNode {
		v.Value, v.Tag, v.Style = value, "", 0
		return
	}
	setNode(m, key, scalar(value))
}

func setNode(m *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = v
			return
		}
	}
	m.Content = append(m.Content, scalar(key), v)
}

func mappingValue(m *yaml.Node, key string) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func scalar(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: v} }
