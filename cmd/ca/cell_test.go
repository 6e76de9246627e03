package main

import "testing"

// Names stored before they were checked, and key labels, reach a terminal
// only as quoted, escaped text when they hold controls or invisible
// formatting.
func TestCell(t *testing.T) {
	for in, want := range map[string]string{
		"deploy":             "deploy",
		"équipe (prod)":      "équipe (prod)",
		"old\x1b[31mred\a":   `"old\x1b[31mred\a"`,
		"bidi \u202etxt.exe": `"bidi \u202etxt.exe"`,
		"\xff\xfe":           `"\xff\xfe"`,
	} {
		if got := cell(in); got != want {
			t.Errorf("cell(%q) = %s, want %s", in, got, want)
		}
	}
}
