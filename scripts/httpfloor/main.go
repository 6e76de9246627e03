// Command httpfloor is a reference for make bench's OCSP figure: a bare
// net/http server answering every request with a fixed body of the given
// size and the headers an OCSP GET answer carries, doing no other work.
// Measured with wrk beside `ca serve` in scripts/bench-ocsp.sh.
package main

import (
	"bytes"
	"flag"
	"log"
	"net/http"
	"strconv"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	size := flag.Int("size", 1100, "response body bytes")
	flag.Parse()
	body := bytes.Repeat([]byte{0x30}, *size)
	log.Fatal(http.ListenAndServe(*addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/ocsp-response")
		h.Set("Cache-Control", "max-age=3600, public, no-transform, must-revalidate")
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	})))
}
