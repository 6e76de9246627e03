package main

import (
	"io"
	"sync"
	"time"
)

// logWriter buffers log lines and writes them in batches: every interval,
// when the buffer passes a limit, and on Close. The server logs one event
// per request; writing each line with its own write(2) cost a fifth of an
// OCSP responder's CPU at tens of thousands of requests a second.
//
// Nothing is dropped: when the output is slower than the logging, Write
// waits for the batch in front of it (backpressure) instead of growing
// without bound. Lines written in the last interval before a crash
// (SIGKILL, a runtime fatal error) may be lost; a normal exit closes the
// writer and writes them.
type logWriter struct {
	out   io.Writer
	limit int

	mu  sync.Mutex // guards buf
	buf []byte

	wmu   sync.Mutex // serialises writes to out, keeping lines in order
	spare []byte     // the buffer being written, reused; guarded by wmu

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// maxSpareLog is the largest buffer kept for reuse after a flush.
const maxSpareLog = 1 << 20

// newLogWriter starts a writer that flushes to out every interval.
func newLogWriter(out io.Writer, interval time.Duration) *logWriter {
	w := &logWriter{out: out, limit: 256 << 10, buf: make([]byte, 0, 64<<10),
		stop: make(chan struct{}), done: make(chan struct{})}
	go w.run(interval)
	return w
}

func (w *logWriter) run(interval time.Duration) {
	defer close(w.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			w.Flush()
		case <-w.stop:
			w.Flush()
			return
		}
	}
}

// Write copies p into the buffer; slog handlers write one whole record per
// call, so records are never interleaved.
func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.buf = append(w.buf, p...)
	full := len(w.buf) >= w.limit
	w.mu.Unlock()
	if full {
		w.Flush()
	}
	return len(p), nil
}

// Flush writes what is buffered. A write error is not reported to the
// loggers (slog drops handler errors anyway); the lines are discarded.
func (w *logWriter) Flush() {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	w.mu.Lock()
	b := w.buf
	w.buf = w.spare[:0]
	w.mu.Unlock()
	if len(b) > 0 {
		w.out.Write(b)
	}
	if cap(b) > maxSpareLog {
		b = nil // don't keep a buffer a burst blew up
	}
	w.spare = b
}

// Close stops the flushing goroutine and writes what is left. Writes after
// Close still reach out, synchronously.
func (w *logWriter) Close() error {
	w.once.Do(func() {
		close(w.stop)
		<-w.done
		w.mu.Lock()
		w.limit = 0
		w.mu.Unlock()
	})
	w.Flush()
	return nil
}
