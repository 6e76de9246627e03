package main

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer counts write calls and is safe for the flusher goroutine.
type syncBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLogWriterBatchesKeepsOrderAndFlushesOnClose(t *testing.T) {
	out := &syncBuffer{}
	w := newLogWriter(out, time.Hour) // only size and Close flush
	var want strings.Builder
	for i := 0; i < 1000; i++ {
		line := fmt.Sprintf("line %d\n", i)
		want.WriteString(line)
		w.Write([]byte(line))
	}
	if out.String() != "" {
		t.Fatal("small writes reached the output before a flush")
	}
	w.Close()
	if out.String() != want.String() {
		t.Fatalf("after Close: got %d bytes, want %d in order", len(out.String()), want.Len())
	}
	if out.writes != 1 {
		t.Fatalf("%d writes for 1000 buffered lines, want 1", out.writes)
	}
	// After Close, writes go straight through.
	w.Write([]byte("late\n"))
	if !strings.HasSuffix(out.String(), "late\n") {
		t.Fatal("a write after Close was lost")
	}
}

func TestLogWriterFlushesOnTickAndWhenFull(t *testing.T) {
	out := &syncBuffer{}
	w := newLogWriter(out, 10*time.Millisecond)
	defer w.Close()
	w.Write([]byte("tick\n"))
	deadline := time.Now().Add(5 * time.Second)
	for out.String() != "tick\n" {
		if time.Now().After(deadline) {
			t.Fatal("the ticker never flushed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	big := bytes.Repeat([]byte("x"), w.limit)
	w2 := newLogWriter(out, time.Hour)
	defer w2.Close()
	w2.Write(big)
	if len(out.String()) != len("tick\n")+len(big) {
		t.Fatal("a write past the limit was not flushed at once")
	}
}

func TestLogWriterConcurrentLinesStayWhole(t *testing.T) {
	out := &syncBuffer{}
	w := newLogWriter(out, time.Millisecond)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				fmt.Fprintf(w, "g%d i%d %s\n", g, i, strings.Repeat("y", 100))
			}
		}(g)
	}
	wg.Wait()
	w.Close()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 16000 {
		t.Fatalf("%d lines, want 16000", len(lines))
	}
	for _, l := range lines {
		if len(l) < 100 || !strings.HasSuffix(l, strings.Repeat("y", 100)) {
			t.Fatalf("torn line %q", l)
		}
	}
}
