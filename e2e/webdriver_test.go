package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/acme/challenge/challengetest"
)

// A minimal W3C WebDriver client for Debian's chromedriver driving headless
// Chromium: new session, navigate, find by CSS, type, click, read text.
// Enough for the console's browser test without a dependency.

type webDriver struct {
	t    *testing.T
	base string // http://127.0.0.1:PORT/session/ID
}

// startBrowser starts chromedriver and a headless Chromium session. The
// session accepts the test CA's server certificate (acceptInsecureCerts):
// its root is in no browser store.
func startBrowser(t *testing.T) *webDriver {
	t.Helper()
	driver := requireTool(t, "chromedriver")
	chromium := requireTool(t, "chromium")
	port := challengetest.FreePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, driver, fmt.Sprintf("--port=%d", port))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	for i := 0; ; i++ {
		if resp, err := http.Get(url + "/status"); err == nil {
			resp.Body.Close()
			break
		}
		if i > 100 {
			t.Fatal("chromedriver did not start")
		}
		time.Sleep(100 * time.Millisecond)
	}
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"acceptInsecureCerts": true,
		"goog:chromeOptions": map[string]any{"binary": chromium,
			"args": []string{"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--user-data-dir=" + t.TempDir()}},
	}}}
	var resp struct {
		Value struct {
			SessionID string `json:"sessionId"`
		} `json:"value"`
	}
	wdCall(t, "POST", url+"/session", caps, &resp)
	wd := &webDriver{t: t, base: url + "/session/" + resp.Value.SessionID}
	t.Cleanup(func() { wdCall(t, "DELETE", wd.base, nil, nil) })
	// Finding an element waits up to 10 s for it (a click's navigation
	// may still be loading).
	wdCall(t, "POST", wd.base+"/timeouts", map[string]int{"implicit": 10000, "pageLoad": 30000}, nil)
	return wd
}

func wdCall(t *testing.T, method, url string, body, out any) {
	t.Helper()
	if err := wdTry(method, url, body, out); err != nil {
		t.Fatal(err)
	}
}

// wdTry is one WebDriver call; a non-200 answer is an error.
func wdTry(method, url string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, r)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("webdriver %s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("webdriver %s %s: %s %.300s", method, url, resp.Status, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("webdriver answer %.300s: %v", data, err)
		}
	}
	return nil
}

func (w *webDriver) open(url string) {
	w.t.Helper()
	wdCall(w.t, "POST", w.base+"/url", map[string]string{"url": url}, nil)
}

// find returns the element id of the first match of css.
func (w *webDriver) find(css string) string {
	w.t.Helper()
	var resp struct {
		Value map[string]string `json:"value"`
	}
	wdCall(w.t, "POST", w.base+"/element", map[string]string{"using": "css selector", "value": css}, &resp)
	for _, id := range resp.Value {
		return id
	}
	w.t.Fatalf("no element %s", css)
	return ""
}

func (w *webDriver) typeInto(css, text string) {
	w.t.Helper()
	wdCall(w.t, "POST", w.base+"/element/"+w.find(css)+"/value", map[string]string{"text": text}, nil)
}

func (w *webDriver) click(css string) {
	w.t.Helper()
	wdCall(w.t, "POST", w.base+"/element/"+w.find(css)+"/click", map[string]string{}, nil)
}

func (w *webDriver) text(css string) string {
	w.t.Helper()
	var resp struct {
		Value string `json:"value"`
	}
	wdCall(w.t, "GET", w.base+"/element/"+w.find(css)+"/text", nil, &resp)
	return resp.Value
}

func (w *webDriver) url() string {
	w.t.Helper()
	var resp struct {
		Value string `json:"value"`
	}
	wdCall(w.t, "GET", w.base+"/url", nil, &resp)
	return resp.Value
}

// waitURL waits up to 10 s for the page's URL to end in suffix.
func (w *webDriver) waitURL(suffix string) {
	w.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		u := w.url()
		if strings.HasSuffix(u, suffix) {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("the browser is at %s, want …%s", u, suffix)
		}
	}
}

// waitText waits up to 10 s for the text of css to satisfy ok, and returns
// it. A click's new page may not have replaced the old one yet, so an
// element found on the old page and gone stale is looked up again.
func (w *webDriver) waitText(css string, ok func(string) bool) string {
	w.t.Helper()
	var last string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var el struct {
			Value map[string]string `json:"value"`
		}
		if wdTry("POST", w.base+"/element", map[string]string{"using": "css selector", "value": css}, &el) != nil {
			continue
		}
		for _, id := range el.Value {
			var txt struct {
				Value string `json:"value"`
			}
			if wdTry("GET", w.base+"/element/"+id+"/text", nil, &txt) == nil {
				last = txt.Value
			}
		}
		if ok(last) {
			break
		}
	}
	return last
}
