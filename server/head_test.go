package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
)

// HEAD is answered wherever GET is, with GET's status and headers and no
// body; a route without GET stays 405.
func TestHeadAsGet(t *testing.T) {
	s := New(Options{})
	s.Engine().POST("/only-post", func(c *gin.Context) { c.Status(http.StatusNoContent) })
	ts := httptest.NewServer(s.HTTPSHandler())
	defer ts.Close()
	for _, tc := range []struct {
		path   string
		status int
		ctype  string
	}{
		{"/healthz", 200, "application/json; charset=utf-8"},
		{"/only-post", 405, "application/problem+json"},
		{"/nowhere", 404, "application/problem+json"},
	} {
		resp, err := http.Head(ts.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != tc.ctype || len(body) != 0 {
			t.Errorf("HEAD %s: %d %q, %d body bytes; want %d %q and no body", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body), tc.status, tc.ctype)
		}
	}
}
