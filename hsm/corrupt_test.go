package hsm

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// TestTamperedObjectFailsToOpen flips every byte of a stored object, and
// edits its attributes, in the database: each time the key fails to open
// with ErrCorrupt (never a different key).
func TestTamperedObjectFailsToOpen(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		f := setup(t, db)
		k, err := f.alice.GenerateKey(ctx, KeySpec{Type: Ed25519, Label: "victim"})
		if err != nil {
			t.Fatal(err)
		}
		other, err := f.alice.GenerateKey(ctx, KeySpec{Type: Ed25519, Label: "other"})
		if err != nil {
			t.Fatal(err)
		}
		rows, _ := db.HSMObject(ctx, k.ID)
		orig := rows[0]
		st := f.m.state.Load()
		set := func(col string, v any) {
			t.Helper()
			if _, err := db.Exec(ctx, `UPDATE hsm_objects SET `+col+` = ? WHERE id = ?`, v, k.ID); err != nil {
				t.Fatal(err)
			}
		}
		expectCorrupt := func(what string) {
			t.Helper()
			forgetKey(st, k.ID)
			if _, err := f.alice.GetKey(ctx, k.ID); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s: GetKey = %v, want ErrCorrupt", what, err)
			}
		}
		for i := range orig.Sealed {
			b := bytes.Clone(orig.Sealed)
			b[i] ^= 0x01
			set("sealed", b)
			expectCorrupt("flipped sealed byte")
		}
		set("sealed", orig.Sealed)
		for i := range orig.Attrs {
			b := bytes.Clone(orig.Attrs)
			b[i] ^= 0x01
			set("attrs", b)
			expectCorrupt("flipped attrs byte")
		}
		set("attrs", orig.Attrs)
		for name, edit := range map[string]func() []byte{
			"extractable": func() []byte {
				return bytes.Replace(orig.Attrs, []byte(`"extractable":false`), []byte(`"extractable":true`), 1)
			},
			"shared": func() []byte {
				return bytes.Replace(orig.Attrs, []byte(`"shared_with":null`), []byte(`"shared_with":["bob"]`), 1)
			},
			"usage": func() []byte { return bytes.Replace(orig.Attrs, []byte(`"usage":3`), []byte(`"usage":127`), 1) },
		} {
			b := edit()
			if bytes.Equal(b, orig.Attrs) {
				t.Fatalf("%s: edit did not apply to %s", name, orig.Attrs)
			}
			set("attrs", b)
			expectCorrupt(name)
		}
		set("attrs", orig.Attrs)
		set("owner", "bob")
		forgetKey(st, k.ID)
		if _, err := f.bob.GetKey(ctx, k.ID); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("owner column changed: bob GetKey = %v, want ErrCorrupt", err)
		}
		set("owner", orig.Owner)
		// Another object's blob (and attributes) moved into this row.
		orows, _ := db.HSMObject(ctx, other.ID)
		set("sealed", orows[0].Sealed)
		expectCorrupt("swapped blob")
		set("attrs", orows[0].Attrs)
		expectCorrupt("swapped blob and attrs")
		set("sealed", orig.Sealed)
		set("attrs", orig.Attrs)
		forgetKey(st, k.ID)
		if _, err := f.alice.GetKey(ctx, k.ID); err != nil {
			t.Fatalf("restored row: %v", err)
		}
	})
}
