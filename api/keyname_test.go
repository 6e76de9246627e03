package api

import (
	"context"
	"strings"
	"testing"

	"github.com/strongroom-pki/strongroom/core"
)

// API key names are labels shown in the console, `ca apikey list` and
// logs: text of at most maxKeyNameLen characters, without control or
// invisible formatting characters. Refused names store nothing.
func TestKeyNames(t *testing.T) {
	e := newEnv(t, nil, nil)
	ctx := context.Background()
	before, _ := ListKeys(ctx, e.db)
	for name, want := range map[string]string{
		"":                                   "needs a name",
		"   ":                                "needs a name",
		strings.Repeat("n", maxKeyNameLen+1): "at most 100",
		"\xff\xfe\x00bad":                    "UTF-8",
		"tab\there":                          "control",
		"bidi \u202etxt.exe":                 "formatting",
		"zero\u200bwidth":                    "formatting",
		"ok, déploiement équipe-a (prod) 🚀":  "",
		strings.Repeat("ü", maxKeyNameLen):   "",
	} {
		_, _, err := CreateKey(ctx, e.db, name, []string{ScopeRead})
		switch {
		case want == "" && err != nil:
			t.Errorf("%q refused: %v", name, err)
		case want != "" && (core.KindOf(err) != core.KindMalformed || !strings.Contains(err.Error(), want)):
			t.Errorf("%q: %v, want a malformed error saying %q", name, err, want)
		}
	}
	after, _ := ListKeys(ctx, e.db)
	if len(after) != len(before)+2 {
		t.Fatalf("%d keys stored, want the 2 good ones", len(after)-len(before))
	}
}
