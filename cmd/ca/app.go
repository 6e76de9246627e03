package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/strongroom-pki/strongroom/api"
	"github.com/strongroom-pki/strongroom/ca"
	"github.com/strongroom-pki/strongroom/config"
	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/hsm"
	"github.com/strongroom-pki/strongroom/ocsp"
	"github.com/strongroom-pki/strongroom/ra"
	"github.com/strongroom-pki/strongroom/server"
)

// app is a running CA: the node plus every front end, mounted on the
// server.
type app struct {
	n *node
	// readyReason is the last readiness answer ("" ready), so a change is
	// logged once (ready).
	readyReason atomic.Pointer[string]
	// signingReason is the last degraded answer (signing.go).
	signingReason atomic.Pointer[string]
	// auditVerdict is the last check of the HSM audit log (auditcheck.go).
	auditVerdict atomic.Int32
	// auditUnauth is how many entries the last check found without a MAC
	// after authentication began; -1 before the first check.
	auditUnauth atomic.Int64
	// auditUnauthOther and auditUnauthSealed split it as the last check
	// logged it (see checkAudit).
	auditUnauthOther, auditUnauthSealed atomic.Int64
	// publishFailures bounds the log of revocations whose Redis steps
	// fail while Redis is down (publish.go).
	publishFailures core.FailureLog
	rest            *api.API // the REST API; the console shares its issuance cap
	sess            *hsm.Session
	// apps is the key service's session (its own HSM user) at assembly,
	// which mountAPI hands to the API; nil when that user could not log
	// in. appsLogin replaces it while serving (appslogin.go).
	apps      *hsm.Session
	appsLogin *appsLogin
	root      *ca.Issuer
	inters    []*ca.Issuer
	srv       *server.Server
	reg       *prometheus.Registry
	tls       *tlsCert
	// pipeline is the issuance pipeline; ra applies policy on top of it.
	pipeline *ca.CA
	ra       *ra.Authority
	shared   *shared
	// responder is this node's OCSP responder (revocation.go).
	responder *ocsp.Responder
	// hsmMetrics times the CA's HSM signatures by key.
	hsmMetrics *hsmMetrics
	https      net.Listener
	plain      net.Listener
	closers    []func()
	closeOnce  sync.Once
	// background runs until Serve's context ends.
	background []func(ctx context.Context)
}

// assemble builds every component from the node's configuration.
func assemble(ctx context.Context, n *node) (*app, error) {
	sess, err := n.caSession(ctx)
	if err != nil {
		return nil, err
	}
	a := &app{n: n, sess: sess, reg: prometheus.NewRegistry()}
	a.closers = append(a.closers, sess.Close)
	a.appsLogin = newAppsLogin(n)
	a.apps = a.appsLogin.start(ctx)
	a.closers = append(a.closers, a.appsLogin.close)
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.hsmMetrics = newHSMMetrics(a.reg)
	a.auditUnauth.Store(-1)
	a.reg.MustRegister(a.signingGauge(), a.auditGauge(), a.auditUnauthGauge(), a.damagedGauge())
	if a.root, a.inters, err = n.issuers(ctx, sess, a.hsmMetrics.signer); err != nil {
		a.Close()
		return nil, err
	}
	expiry := newExpiryMetrics(a.issuerEnds, n.db.CountExpiring, n.log)
	a.reg.MustRegister(expiry)
	a.closers = append(a.closers, expiry.stop) // ends a count in progress
	if a.shared, err = newShared(ctx, n.cfg, n); err != nil {
		a.Close()
		return nil, err
	}
	a.closers = append(a.closers, a.shared.close)
	a.tls = &tlsCert{hostname: n.cfg.Hostname, log: n.log, status: func(ctx context.Context, serial core.Serial) (core.CertStatus, error) {
		rec, err := n.db.GetCertificate(ctx, serial)
		if err != nil {
			return "", err
		}
		return rec.Status, nil
	}}
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(a.root.Certificate())
	for _, in := range a.inters {
		clientCAs.AddCert(in.Certificate())
	}
	a.srv = server.New(server.Options{
		ClientCAs:      clientCAs,
		HTTPSAddr:      n.cfg.Listen.HTTPS,
		HTTPAddr:       n.cfg.Listen.HTTP,
		GetCertificate: a.tls.GetCertificate,
		BodyLimit:      n.cfg.Limits.BodyBytes,
		ReadTimeout:    n.cfg.Limits.ReadTimeout.D(),
		WriteTimeout:   n.cfg.Limits.WriteTimeout.D(),
		IdleTimeout:    n.cfg.Limits.IdleTimeout.D(),
		RequestTimeout: n.cfg.Limits.RequestTimeout.D(),
		ConnsPerIP:     n.cfg.Limits.ConnsPerIP,
		Ready:          a.ready,
		Degraded:       a.degraded,
		Registry:       a.reg,
		Logger:         n.log,
	})
	if err := a.mountFrontEnds(ctx); err != nil {
		a.Close()
		return nil, err
	}
	if err := a.tls.renew(ctx); err != nil {
		a.Close()
		return nil, err
	}
	a.background = append(a.background, a.tls.keepRenewed, func(ctx context.Context) { a.appsLogin.watch(ctx, a.serveKeys) }, a.watchAudit, a.watchDamaged)
	if b := n.cfg.HSM.Backup; !b.Disabled {
		sched := hsm.BackupSchedule{Dir: config.Path(n.dir, b.Dir), CopyDir: b.CopyDir, Keep: b.Keep, Interval: b.Interval.D()}
		a.background = append(a.background, func(ctx context.Context) {
			if err := n.hsm.RunBackups(ctx, sched); err != nil && ctx.Err() == nil {
				n.log.Error("scheduled HSM backups stopped", "err", err)
			}
		})
	}
	return a, nil
}

// serveKeys gives the REST API the key service in s, or turns it off
// (nil).
func (a *app) serveKeys(s *hsm.Session) {
	if s == nil {
		a.rest.SetKeyService(nil)
		return
	}
	a.rest.SetKeyService(a.hsmMetrics.keys(s))
}

// ready is /readyz: the database answers and the HSM is unsealed and
// passed its self-tests. Anyone may ask, so the reason it gives is generic;
// the log has the detail (the database driver's error names the host, user
// and database), once per change, not once per probe.
func (a *app) ready(ctx context.Context) error {
	reason, detail := a.readiness(ctx)
	if prev := a.readyReason.Swap(&reason); prev == nil || *prev != reason {
		switch {
		case reason != "":
			a.n.log.Warn("not ready: "+reason, "err", detail)
		case prev != nil:
			a.n.log.Info("ready again")
		}
	}
	if reason != "" {
		return errors.New(reason)
	}
	return nil
}

// readiness returns why the node is not ready ("" when it is) and the
// error behind it.
func (a *app) readiness(ctx context.Context) (string, error) {
	if err := a.n.db.Ping(ctx); err != nil {
		return "the database is unavailable", err
	}
	st, err := a.n.hsm.Status(ctx)
	switch {
	case err != nil:
		return "the HSM status could not be read", err
	case st.Sealed:
		return "the HSM is sealed", nil
	case st.Failure != "":
		return "the HSM failed its self-tests", errors.New(st.Failure)
	}
	return "", nil
}

// Listen opens both listeners before anything is printed, so a port in
// use is reported at start.
func (a *app) Listen() error {
	var err error
	if a.https, err = net.Listen("tcp", a.n.cfg.Listen.HTTPS); err != nil {
		return fmt.Errorf("listening for HTTPS on %s: %w", a.n.cfg.Listen.HTTPS, err)
	}
	if a.plain, err = net.Listen("tcp", a.n.cfg.Listen.HTTP); err != nil {
		a.https.Close()
		return fmt.Errorf("listening for HTTP on %s: %w", a.n.cfg.Listen.HTTP, err)
	}
	return nil
}

// Serve serves until ctx ends. It returns only after the background tasks
// have stopped, so a Close or Seal that follows never races a backup or a
// certificate renewal still using the HSM.
func (a *app) Serve(ctx context.Context) error {
	bg, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, f := range a.background {
		wg.Go(func() { f(bg) })
	}
	err := a.srv.ServeListeners(ctx, a.https, a.plain)
	cancel()
	wg.Wait()
	return err
}

// Close releases everything assemble built; it may be called again.
func (a *app) Close() {
	a.closeOnce.Do(func() {
		for i := len(a.closers) - 1; i >= 0; i-- {
			a.closers[i]()
		}
	})
}

func (a *app) HTTPSURL() string { return strings.TrimSuffix(a.n.cfg.URLs.HTTPS, "/") }
func (a *app) HTTPURL() string  { return strings.TrimSuffix(a.n.cfg.URLs.HTTP, "/") }

func (a *app) ACMEDirectoryURL() string {
	u, _ := url.JoinPath(a.HTTPSURL(), "acme", a.defaultACMEEndpoint(), "directory")
	return u
}

// issuerEnds is when each CA certificate expires, for /metrics.
func (a *app) issuerEnds() map[string]time.Time {
	out := map[string]time.Time{a.root.ID(): a.root.Certificate().NotAfter}
	for _, in := range a.inters {
		out[in.ID()] = in.Certificate().NotAfter
	}
	return out
}
