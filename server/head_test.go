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

// Requests under a prefix given to Unmatched that match no route, or none
// for their method, are answered by its handler; others get the problem
// document.
func TestUnmatchedByPrefix(t *testing.T) {
	s := New(Options{})
	s.Engine().GET("/ui/page", func(c *gin.Context) { c.Status(http.StatusNoContent) })
	s.Unmatched("/ui/", func(c *gin.Context, status int) { c.String(status, "console %d", status) })
	ts := httptest.NewServer(s.HTTPSHandler())
	defer ts.Close()
	for _, tc := range []struct {
		method, path string
		status       int
		body         string
	}{
		{"GET", "/ui/nope", 404, "console 404"},
		{"GET", "/ui", 404, "console 404"},
		{"POST", "/ui/page", 405, "console 405"},
		{"GET", "/uix", 404, "problem"},
		{"GET", "/api/v1/nope", 404, "problem"},
	} {
		req, _ := http.NewRequest(tc.method, ts.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got := string(body)
		if tc.body == "problem" && resp.Header.Get("Content-Type") == "application/problem+json" {
			got = "problem"
		}
		if resp.StatusCode != tc.status || got != tc.body {
			t.Errorf("%s %s: %d %q, want %d %q", tc.method, tc.path, resp.StatusCode, body, tc.status, tc.body)
		}
	}
}
