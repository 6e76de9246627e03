package challenge_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/strongroom-pki/strongroom/acme/challenge"
	"github.com/strongroom-pki/strongroom/acme/challenge/challengetest"
)

const (
	token   = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
	thumb   = "nP1qzpXGymHBrUEepNY9HCsQk7K8KhOypzEt62jcerQ"
	keyAuth = token + "." + thumb
)

func newValidator(t *testing.T, opts challenge.Options) *challenge.Validator {
	t.Helper()
	v, err := challenge.New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return v
}

// want checks err against the expected error type ("" = success) and that the
// detail mentions every fragment.
func want(t *testing.T, err error, typ string, fragments ...string) {
	t.Helper()
	if typ == "" {
		if err != nil {
			t.Fatalf("validation failed: %v", err)
		}
		return
	}
	var ce *challenge.Error
	if !errors.As(err, &ce) {
		t.Fatalf("got %v (%T), want *challenge.Error of type %s", err, err, typ)
	}
	if ce.Type != typ {
		t.Fatalf("got error type %q (%s), want %q", ce.Type, ce.Detail, typ)
	}
	for _, f := range fragments {
		if !strings.Contains(ce.Detail, f) {
			t.Errorf("detail %q does not mention %q", ce.Detail, f)
		}
	}
}

// blackhole accepts TCP connections and reads UDP packets but never answers.
func blackhole(t *testing.T) (tcpPort int, udpAddr string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never written to
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		pc.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().(*net.TCPAddr).Port, pc.LocalAddr().String()
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) int { return challengetest.FreePort(t) }

var ctx = context.Background()
