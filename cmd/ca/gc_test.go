package main

import (
	"os"
	"runtime/debug"
	"testing"
)

func TestTuneGC(t *testing.T) {
	was := debug.SetGCPercent(100)
	defer debug.SetGCPercent(was)

	t.Setenv("GOGC", "150") // the operator's choice, already applied by the runtime
	if tuneGC() {
		t.Fatal("tuneGC overrode GOGC from the environment")
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GC percent changed to %d with GOGC set", got)
	}

	os.Unsetenv("GOGC") // t.Setenv restores it after the test
	if !tuneGC() {
		t.Fatal("tuneGC did not apply its target without GOGC")
	}
	if got := debug.SetGCPercent(100); got != serveGCPercent {
		t.Fatalf("GC percent %d, want %d", got, serveGCPercent)
	}
}
