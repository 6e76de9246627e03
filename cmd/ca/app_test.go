package main

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/server"
)

// TestServeWaitsForBackground: Serve returns only after every background
// task has stopped, so the serve loop's Close and Seal that follow never
// race a backup or a certificate renewal still using the HSM.
func TestServeWaitsForBackground(t *testing.T) {
	var finished atomic.Int32
	a := &app{srv: server.New(server.Options{})}
	for range 2 {
		a.background = append(a.background, func(ctx context.Context) {
			<-ctx.Done()
			time.Sleep(20 * time.Millisecond) // a task finishing its last HSM call
			finished.Add(1)
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.Serve(ctx); err != nil {
		t.Fatal(err)
	}
	if n := finished.Load(); n != 2 {
		t.Fatalf("Serve returned with %d of 2 background tasks still running", 2-n)
	}
}
