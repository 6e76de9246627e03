package challengetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// apiServer is the DNS server's HTTP API:
//
//	POST /present   {"fqdn": "_acme-challenge.example.com.", "value": "..."}  adds a TXT value (lego httpreq)
//	POST /cleanup   {"fqdn": "...", "value": "..."}                           removes it
//	POST /set-txt   {"host": "...", "value": "..."}                           adds a TXT value (pebble-challtestsrv)
//	POST /clear-txt {"host": "..."}                                           removes every TXT value at host
//	POST /add-a     {"host": "...", "addresses": ["127.0.0.1", "::1"]}       sets A/AAAA records
//
// Every request answers 200 with an empty body, or 400 with a message.
type apiServer struct {
	srv *http.Server
	url string
}

type apiRequest struct {
	FQDN      string   `json:"fqdn"`
	Host      string   `json:"host"`
	Value     string   `json:"value"`
	Addresses []string `json:"addresses"`
}

func startAPI(host string, s *DNSServer) (*apiServer, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return nil, fmt.Errorf("listening for the DNS server API: %w", err)
	}
	mux := http.NewServeMux()
	handle := func(path string, apply func(apiRequest) error) {
		mux.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) {
			var req apiRequest
			dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&req); err != nil {
				http.Error(w, "bad JSON body: "+err.Error(), http.StatusBadRequest)
				return
			}
			if err := apply(req); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		})
	}
	name := func(req apiRequest) (string, error) {
		n := req.FQDN
		if n == "" {
			n = req.Host
		}
		if n == "" || strings.ContainsAny(n, " \t\r\n") {
			return "", errors.New("missing or bad fqdn/host")
		}
		return n, nil
	}
	withValue := func(f func(name, value string)) func(apiRequest) error {
		return func(req apiRequest) error {
			n, err := name(req)
			if err != nil {
				return err
			}
			if req.Value == "" {
				return errors.New("missing value")
			}
			f(n, req.Value)
			return nil
		}
	}
	handle("/present", withValue(s.AddTXT))
	handle("/set-txt", withValue(s.AddTXT))
	handle("/cleanup", withValue(s.RemoveTXT))
	handle("/clear-txt", func(req apiRequest) error {
		n, err := name(req)
		if err == nil {
			s.ClearTXT(n)
		}
		return err
	})
	handle("/add-a", func(req apiRequest) error {
		n, err := name(req)
		if err != nil {
			return err
		}
		for _, a := range req.Addresses {
			if net.ParseIP(a) == nil {
				return fmt.Errorf("%q is not an IP address", a)
			}
		}
		s.SetA(n, req.Addresses...)
		return nil
	})
	a := &apiServer{
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second},
		url: "http://" + ln.Addr().String(),
	}
	go a.srv.Serve(ln)
	return a, nil
}

func (a *apiServer) Close() { _ = a.srv.Close() }

// Hooks are executable scripts that set and clear TXT records through the
// HTTP API, for ACME clients that run a program per challenge. They are
// Python 3 (standard library only): certbot depends on it, so it is present
// wherever certbot is.
type Hooks struct {
	// LegoExec is for lego --dns exec (EXEC_PATH): it is called with
	// "present" or "cleanup", the record's FQDN and its value.
	LegoExec string
	// CertbotAuth and CertbotCleanup are for certbot --manual-auth-hook and
	// --manual-cleanup-hook: they read CERTBOT_DOMAIN and CERTBOT_VALIDATION.
	CertbotAuth    string
	CertbotCleanup string
}

const hookPrelude = `#!/usr/bin/env python3
import json, os, sys, urllib.request

def post(path, fqdn, value):
    req = urllib.request.Request(%q + path, method="POST",
        data=json.dumps({"fqdn": fqdn, "value": value}).encode(),
        headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=10).read()

def certbot_fqdn():
    d = os.environ["CERTBOT_DOMAIN"]
    if d.startswith("*."):  # certbot passes the base domain; be safe anyway
        d = d[2:]
    return "_acme-challenge." + d + "."
`

// WriteHooks writes the hook scripts into dir.
func (s *DNSServer) WriteHooks(dir string) (Hooks, error) {
	prelude := fmt.Sprintf(hookPrelude, s.APIURL())
	scripts := map[string]string{
		"lego-exec.py": prelude + `
if len(sys.argv) >= 4 and sys.argv[1] in ("present", "cleanup"):
    post("/" + sys.argv[1], sys.argv[2], sys.argv[3])
`,
		"certbot-auth.py":    prelude + "\npost(\"/present\", certbot_fqdn(), os.environ[\"CERTBOT_VALIDATION\"])\n",
		"certbot-cleanup.py": prelude + "\npost(\"/cleanup\", certbot_fqdn(), os.environ[\"CERTBOT_VALIDATION\"])\n",
	}
	for name, body := range scripts {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			return Hooks{}, fmt.Errorf("writing hook %s: %w", name, err)
		}
	}
	return Hooks{
		LegoExec:       filepath.Join(dir, "lego-exec.py"),
		CertbotAuth:    filepath.Join(dir, "certbot-auth.py"),
		CertbotCleanup: filepath.Join(dir, "certbot-cleanup.py"),
	}, nil
}
