package server

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// One client address holds at most ConnsPerIP connections: the next is
// closed at once (and logged), and a freed slot is usable again.
func TestConnsPerIP(t *testing.T) {
	logs := &recordingHandler{}
	s := New(Options{Logger: slog.New(logs), ConnsPerIP: 2, IdleTimeout: time.Hour})
	s.MountPlain("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ServeListeners(ctx, nil, l) }()
	defer func() { cancel(); <-done }()
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	get := func(c net.Conn) error {
		c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := io.WriteString(c, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	first, second := dial(), dial()
	if err := get(first); err != nil {
		t.Fatalf("first connection: %v", err)
	}
	if err := get(second); err != nil {
		t.Fatalf("second connection: %v", err)
	}
	if err := get(dial()); err == nil {
		t.Fatal("a third connection from the same address was served")
	}
	first.Close()
	deadline := time.Now().Add(3 * time.Second)
	for get(dial()) != nil {
		if time.Now().After(deadline) {
			t.Fatal("a freed slot was not usable again")
		}
		time.Sleep(50 * time.Millisecond)
	}
	logs.mu.Lock()
	defer logs.mu.Unlock()
	for _, r := range logs.recs {
		if strings.Contains(r.Message, "conns_per_ip") {
			return
		}
	}
	t.Fatal("the refusal was not logged")
}
