package core

import "testing"

// TestInvisible: characters that display as nothing, or act on a
// terminal, are invisible; letters of any script and ordinary punctuation
// are not.
func TestInvisible(t *testing.T) {
	for _, r := range []rune{'\x00', '\n', '\u202e', '\u200b', '\u2028', '\u2029', '\u3164', '\u115f', '\u034f', '\ufe0f', '\ue000'} {
		if !Invisible(r) {
			t.Errorf("U+%04X is not invisible", r)
		}
	}
	for _, r := range []rune{'a', 'Z', '7', ' ', '-', '.', 'é', 'ß', '鈴', 'ー', '・', 'я'} {
		if Invisible(r) {
			t.Errorf("U+%04X (%c) is invisible", r, r)
		}
	}
}
