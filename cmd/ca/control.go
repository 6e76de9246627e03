package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/hsm"
	"github.com/strongroom-pki/strongroom/ra"
	"github.com/strongroom-pki/strongroom/storage"
)

// controlSocket is the running server's local control endpoint:
// DIR/control.sock, mode 0600, so only the data directory's owner can seal
// or unseal the HSM of a running `ca serve`. Unseal material never crosses
// the network.
const controlSocket = "control.sock"

// control serves the control socket for one node.
type control struct {
	n *node
	// sealReq carries seal requests to the serve loop; the loop answers
	// on the inner channel once the app is closed and the HSM sealed.
	sealReq chan chan struct{}
	// unsealed is signalled after a successful unseal through the socket;
	// start then carries whether the CA started (started).
	unsealed chan struct{}
	start    chan error
	mu       sync.Mutex
	// revoker is the serving app's registration authority, nil while
	// sealed or starting (POST /revoke, `ca cert revoke`).
	revoker atomic.Pointer[ra.Authority]
	// serving is the serving app, nil while sealed or starting.
	serving atomic.Pointer[app]
}

type unsealRequest struct {
	Passphrase string   `json:"passphrase,omitempty"`
	Shares     []string `json:"shares,omitempty"`
}

func newControl(n *node) *control {
	return &control{n: n, sealReq: make(chan chan struct{}), unsealed: make(chan struct{}, 1), start: make(chan error, 1)}
}

// listen opens the control socket, refusing a data directory another ca
// serve is running on. Serve calls it before unsealing, so a second
// server in one directory stops before it uses the HSM or issues itself a
// TLS certificate.
func (c *control) listen() (net.Listener, error) {
	path := filepath.Join(c.n.dir, controlSocket)
	if conn, err := net.Dial("unix", path); err == nil {
		conn.Close()
		return nil, fmt.Errorf("another ca serve is running on %s (%s answers)", c.n.dir, path)
	}
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// serve answers on the socket l until ctx ends.
func (c *control) serve(ctx context.Context, l net.Listener) error {
	path := filepath.Join(c.n.dir, controlSocket)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /seal", c.seal)
	mux.HandleFunc("POST /unseal", c.unseal)
	mux.HandleFunc("GET /status", c.status)
	mux.HandleFunc("POST /revoke", c.revoke)
	mux.HandleFunc("POST /block-key", c.blockKey)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
		os.Remove(path)
	}()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (c *control) seal(w http.ResponseWriter, r *http.Request) {
	done := make(chan struct{})
	select {
	case c.sealReq <- done:
		<-done
	case <-r.Context().Done():
		return
	default:
		// Not serving (already sealed or still starting): seal directly.
		c.n.hsm.Seal()
	}
	c.reply(w, r, controlStatus{})
}

// controlStatus is the control socket's answer to /seal and /unseal.
type controlStatus struct {
	hsm.Status
	// Note says why nothing was done (the module was already unsealed).
	Note string `json:"note,omitempty"`
	// NeedsMaterial: an unseal request came without material and the
	// server has none of its own; the client asks for it and tries again.
	NeedsMaterial bool `json:"needs_material,omitempty"`
	// CAKeys, from a serving node, is "ok" when every issuer's key signs,
	// else why one does not (a CA key on a PKCS#11 token gone): `ca hsm
	// status` reads it instead of logging in to the token itself.
	CAKeys string `json:"ca_keys,omitempty"`
}

// unseal is POST /unseal. The module is checked first, so an unsealed one
// answers "already unsealed" whatever the request holds, and the serve loop
// is signalled only by an unseal that happened here.
func (c *control) unseal(w http.ResponseWriter, r *http.Request) {
	var req unsealRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil {
		http.Error(w, "bad unseal request: "+err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.n.hsm.Sealed() {
		c.reply(w, r, controlStatus{Note: "already unsealed; nothing done"})
		return
	}
	var err error
	if req.Passphrase == "" && len(req.Shares) == 0 {
		// The configured material (key file, token, passphrase in the
		// server's environment), as at start; else ask the client.
		if err = c.n.unsealFromEnvironment(r.Context()); errors.Is(err, errNeedsOperator) {
			c.reply(w, r, controlStatus{NeedsMaterial: true, Status: hsm.Status{Sealed: true, Method: hsm.UnsealMethod(c.n.cfg.HSM.Unseal)}})
			return
		}
	} else {
		err = c.n.hsm.Unseal(r.Context(), hsm.UnsealInput{Passphrase: []byte(req.Passphrase), Shares: req.Shares})
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	select {
	case <-c.start: // a report nobody waited for
	default:
	}
	select {
	case c.unsealed <- struct{}{}:
	default:
	}
	// The module is unsealed; say so only once the CA serves again.
	select {
	case err = <-c.start:
	case <-time.After(50 * time.Second): // within the client's 60 s
		http.Error(w, "the HSM is unsealed, but the CA has not started within 50 seconds; its log says why", http.StatusServiceUnavailable)
		return
	case <-r.Context().Done():
		return
	}
	if err != nil {
		http.Error(w, "the HSM unsealed, but the CA could not start, so it is sealed again: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	c.reply(w, r, controlStatus{})
}

// started reports whether the CA started after an unseal; an unseal
// through the socket waits for it.
func (c *control) started(err error) {
	select {
	case c.start <- err:
	default:
	}
}

// autoUnseal unseals with the configured material when it needs no
// operator (at start), serialised with unseals through the socket.
func (c *control) autoUnseal(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n.unsealFromEnvironment(ctx)
}

func (c *control) status(w http.ResponseWriter, r *http.Request) {
	res := controlStatus{}
	if a := c.serving.Load(); a != nil {
		res.CAKeys = "ok"
		// Every failing key, not only the first (found by a review).
		var why []string
		for _, f := range a.failingIssuers(true) {
			why = append(why, fmt.Sprintf("the key of issuer %s cannot sign: %v", f.id, f.err))
		}
		if len(why) > 0 {
			res.CAKeys = strings.Join(why, "; ")
		}
	}
	c.reply(w, r, res)
}

// reply answers with the module's status and res's note or request.
func (c *control) reply(w http.ResponseWriter, r *http.Request, res controlStatus) {
	st, err := c.n.hsm.Status(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	res.Status = st
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(res)
}

// revoke revokes through the serving app, as REST does: its OCSP cache,
// CRL schedule and the other nodes hear of it at once.
func (c *control) revoke(w http.ResponseWriter, r *http.Request) {
	auth := c.revoker.Load()
	if auth == nil {
		http.Error(w, "the CA is sealed or starting: try again when it serves", http.StatusServiceUnavailable)
		return
	}
	var req revokeRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil {
		http.Error(w, "bad revoke request: "+err.Error(), http.StatusBadRequest)
		return
	}
	revoke := func() error {
		return auth.Revoke(r.Context(), req.Serial, req.Reason, req.Invalidity, "cli:control-socket")
	}
	if req.Reason == core.ReasonKeyCompromise { // an operator: blocks the key
		revoke = func() error {
			return auth.RevokeAndBlockKey(r.Context(), req.Serial, req.Invalidity, "cli:control-socket")
		}
	}
	if err := storage.Classify(revoke()); err != nil {
		status := http.StatusInternalServerError
		switch core.KindOf(err) {
		case core.KindNotFound:
			status = http.StatusNotFound
		case core.KindConflict:
			status = http.StatusConflict
		case core.KindMalformed, core.KindRejected:
			status = http.StatusBadRequest
		case core.KindUnavailable:
			status = http.StatusServiceUnavailable
		default:
			// The operator sees "internal error"; the log says what
			// failed (a review found neither saying the disk was full).
			c.n.log.Error("revocation through the control socket failed", "serial", req.Serial, "err", err)
		}
		http.Error(w, core.DetailOf(err), status)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// controlClient talks to a running server's control socket.
func controlClient(dir string) (*http.Client, bool) {
	path := filepath.Join(dir, controlSocket)
	conn, err := net.Dial("unix", path)
	if err != nil {
		return nil, false
	}
	conn.Close()
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}}}, true
}
