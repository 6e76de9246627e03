package storage_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

func TestSettings(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		if _, err := db.GetSetting(ctx, "x"); !core.IsNotFound(err) {
			t.Fatalf("missing setting: got %v, want not found", err)
		}
		for _, v := range []string{"one", "two"} {
			if err := db.PutSetting(ctx, "x", []byte(v)); err != nil {
				t.Fatal(err)
			}
			got, err := db.GetSetting(ctx, "x")
			if err != nil || !bytes.Equal(got, []byte(v)) {
				t.Fatalf("GetSetting = %q, %v; want %q", got, err, v)
			}
		}
	})
}
