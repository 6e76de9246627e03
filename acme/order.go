package acme

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.step.sm/crypto/jose"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/ra"
	"github.com/strongroom-pki/strongroom/storage"
)

// Orders (RFC 8555 §7.4): newOrder, order and orders list, finalize and
// certificate download.

type orderJSON struct {
	Status         string          `json:"status"`
	Expires        string          `json:"expires,omitempty"`
	Identifiers    []Identifier    `json:"identifiers"`
	Profile        string          `json:"profile,omitempty"`
	Authorizations []string        `json:"authorizations"`
	Finalize       string          `json:"finalize"`
	Certificate    string          `json:"certificate,omitempty"`
	Error          json.RawMessage `json:"error,omitempty"`
	Replaces       string          `json:"replaces,omitempty"`
}

// orderStatus derives the status of §7.1.6 from the stored one and the
// authorizations: "ready" once all are valid, "invalid" if any failed or
// the order expired.
func orderStatus(o *storage.ACMEOrder, now time.Time) string {
	if o.Status != "pending" {
		return o.Status
	}
	if !now.Before(o.Expires) {
		return "invalid"
	}
	ready := true
	for i := range o.Authzs {
		switch authzStatus(&o.Authzs[i], now) {
		case "valid":
		case "pending":
			ready = false
		default:
			return "invalid"
		}
	}
	if ready {
		return "ready"
	}
	return "pending"
}

// authzStatus adds "expired" to the stored status.
func authzStatus(a *storage.ACMEAuthz, now time.Time) string {
	if (a.Status == "pending" || a.Status == "valid") && !now.Before(a.Expires) {
		return "expired"
	}
	return a.Status
}

func (s *Server) writeOrder(w http.ResponseWriter, status int, o *storage.ACMEOrder) error {
	j := orderJSON{Status: orderStatus(o, s.now()), Expires: rfc3339(o.Expires), Profile: o.Profile,
		Finalize: s.url(pathOrder, o.ID, "finalize"), Error: o.Error, Replaces: o.Replaces,
		Authorizations: make([]string, 0, len(o.Authzs))}
	for _, id := range o.Identifiers {
		j.Identifiers = append(j.Identifiers, Identifier(id))
	}
	for _, a := range o.Authzs {
		j.Authorizations = append(j.Authorizations, s.url(pathAuthz, a.ID))
	}
	if o.CertSerial != "" {
		j.Certificate = s.url(pathCert, o.CertSerial)
	}
	w.Header().Set("Location", s.url(pathOrder, o.ID))
	return writeJSON(w, status, j)
}

func (s *Server) newOrder(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	req, err := s.verify(ctx, w, r, kidOnly)
	if err != nil {
		return err
	}
	var in struct {
		Identifiers []Identifier `json:"identifiers"`
		NotBefore   string       `json:"notBefore"`
		NotAfter    string       `json:"notAfter"`
		Profile     string       `json:"profile"`
		Replaces    string       `json:"replaces"`
	}
	if err := decodePayload(req.payload, &in); err != nil {
		return err
	}
	if in.NotBefore != "" || in.NotAfter != "" {
		return malformed("notBefore and notAfter are not supported: the profile sets the validity")
	}
	ids, err := normalizeIdentifiers(in.Identifiers)
	if err != nil {
		return err
	}
	profile, caProfile, err := s.profile(in.Profile)
	if err != nil {
		return err
	}
	if s.o.Policy != nil {
		if err := s.o.Policy.CheckIdentifiers(ctx, s.o.Name, ids, caProfile); err != nil {
			if k := core.KindOf(err); k == core.KindRejected || len(identifierErrors(err)) > 0 {
				return rejected(err, core.DetailOf(err))
			}
			return err
		}
	}
	acct := req.account
	if err := s.checkEABNames(ctx, acct.EABKID, ids); err != nil {
		return err
	}
	if in.Replaces != "" {
		if err := s.checkReplaces(ctx, acct.ID, in.Replaces, ids); err != nil {
			return err
		}
	}
	refund, err := s.limit(ctx, "new-order:"+acct.ID, s.o.Limits.NewOrdersPerAccountPerHour,
		"too many new orders for this account")
	if err != nil {
		return err
	}
	created := false
	defer func() {
		if !created {
			refund()
		}
	}()
	now := s.now()
	o := &storage.ACMEOrder{Endpoint: s.o.Name, AccountID: acct.ID, Status: "pending", Profile: profile,
		Expires: now.Add(s.o.OrderLifetime), Replaces: in.Replaces, CreatedAt: now}
	if o.ID, err = randomID(); err != nil {
		return err
	}
	for _, id := range ids {
		o.Identifiers = append(o.Identifiers, storage.ACMEIdentifier(id))
		a, err := s.reusedAuthz(ctx, acct.ID, id, now)
		if err == nil && a == nil {
			a, err = newAuthz(id, o.Expires)
		}
		if err != nil {
			return err
		}
		o.Authzs = append(o.Authzs, *a)
	}
	if err := s.o.Store.CreateACMEOrder(ctx, o); err != nil {
		return err
	}
	created = true
	s.log.InfoContext(ctx, "acme order created", "account", acct.ID, "order", o.ID, "identifiers", len(ids))
	return s.writeOrder(w, http.StatusCreated, o)
}

// profile maps an order's profile name (draft-ietf-acme-profiles) to the
// name echoed in the order and the CA profile to issue with.
func (s *Server) profile(name string) (string, string, error) {
	if len(s.o.Profiles) == 0 {
		if name != "" {
			return "", "", prob("invalidProfile", http.StatusBadRequest, "this endpoint offers no profiles")
		}
		return "", s.o.DefaultProfile, nil
	}
	if name == "" {
		name = s.o.DefaultProfile
	}
	p, ok := s.o.Profiles[name]
	if !ok {
		return "", "", prob("invalidProfile", http.StatusBadRequest, "unknown profile "+quote(name))
	}
	return name, p.CAProfile, nil
}

// loadOrder reads an order of the signing account.
func (s *Server) loadOrder(ctx context.Context, req *request, id string) (*storage.ACMEOrder, error) {
	o, err := s.o.Store.ACMEOrder(ctx, s.o.Name, id)
	if isNotFound(err) {
		return nil, notFoundProblem("order")
	}
	if err != nil {
		return nil, err
	}
	if o.AccountID != req.account.ID {
		return nil, unauthorized("this order belongs to another account")
	}
	return o, nil
}

func (s *Server) order(ctx context.Context, w http.ResponseWriter, r *http.Request, id string) error {
	req, err := s.verify(ctx, w, r, kidOnly)
	if err != nil {
		return err
	}
	if !req.postAsGet() {
		return malformed("an order is read with POST-as-GET (empty payload)")
	}
	o, err := s.loadOrder(ctx, req, id)
	if err != nil {
		return err
	}
	return s.writeOrder(w, http.StatusOK, o)
}

const ordersPageSize = 100

// orders lists the account's orders that are not invalid, newest first,
// paged with Link rel="next" (§7.1.2.1).
func (s *Server) orders(ctx context.Context, w http.ResponseWriter, r *http.Request, id string) error {
	req, err := s.verify(ctx, w, r, kidOnly)
	if err != nil {
		return err
	}
	if req.account.ID != id {
		return unauthorized("the request is not signed by this account")
	}
	ids, err := s.o.Store.ACMEOrderIDs(ctx, s.o.Name, id, r.URL.Query().Get("cursor"), s.now(), ordersPageSize)
	if isNotFound(err) {
		return malformed("unknown orders cursor")
	}
	if err != nil {
		return err
	}
	urls := make([]string, 0, len(ids))
	for _, oid := range ids {
		urls = append(urls, s.url(pathOrder, oid))
	}
	if len(ids) == ordersPageSize {
		w.Header().Add("Link", link(s.url(pathAccount, id, "orders")+"?cursor="+ids[len(ids)-1], "next"))
	}
	return writeJSON(w, http.StatusOK, map[string][]string{"orders": urls})
}

func (s *Server) finalize(ctx context.Context, w http.ResponseWriter, r *http.Request, id string) error {
	req, err := s.verify(ctx, w, r, kidOnly)
	if err != nil {
		return err
	}
	o, err := s.loadOrder(ctx, req, id)
	if err != nil {
		return err
	}
	if st := orderStatus(o, s.now()); st != "ready" {
		return prob("orderNotReady", http.StatusForbidden, "order is "+st+", not ready")
	}
	var in struct {
		CSR string `json:"csr"`
	}
	if err := decodePayload(req.payload, &in); err != nil {
		return err
	}
	csr, err := parseCSR(in.CSR)
	if err != nil {
		return err
	}
	names, err := csrIdentifiers(csr)
	if err != nil {
		return err
	}
	want := make([]Identifier, 0, len(o.Identifiers))
	for _, id := range o.Identifiers {
		want = append(want, Identifier(id))
	}
	if !equalIdentifiers(names, sortedSet(want)) {
		return prob("badCSR", http.StatusBadRequest, "CSR names differ from the order's identifiers")
	}
	_, caProfile, err := s.profile(o.Profile)
	if err != nil {
		caProfile = s.o.DefaultProfile
	}
	if err := s.checkCSRKey(ctx, req.account, csr, caProfile); err != nil {
		return err
	}
	if ok, err := s.o.Store.StartACMEFinalize(ctx, s.o.Name, o.ID, s.now()); err != nil {
		return err
	} else if !ok {
		return prob("orderNotReady", http.StatusForbidden, "order is already being finalized")
	}
	// The order is processing now: issuance and its settlement run to the
	// end even if the client hangs up, or the order would stay processing
	// for good (and a certificate might be issued but never recorded here).
	ctx = context.WithoutCancel(ctx)
	issued, err := s.o.Issuer.Issue(ctx, csr, caProfile, "acme:"+s.o.Name+"/"+o.AccountID)
	if err == nil {
		err = s.finish(ctx, o, issued)
	}
	if err != nil {
		return s.failFinalize(ctx, o, err)
	}
	// FinishACMEOrder moved it from processing to valid with this serial.
	o.Status, o.CertSerial, o.Error = "valid", string(issued.Serial), nil
	s.log.InfoContext(ctx, "acme order finalized", "account", o.AccountID, "order", o.ID, "serial", issued.Serial)
	return s.writeOrder(w, http.StatusOK, o)
}

func (s *Server) finish(ctx context.Context, o *storage.ACMEOrder, issued *Issued) error {
	if issued == nil || len(issued.Chains) == 0 || len(issued.Chains[0]) == 0 {
		return core.Errorf(core.KindInternal, "issuer returned no certificate")
	}
	c := &storage.ACMECert{Serial: string(issued.Serial), Endpoint: s.o.Name, AccountID: o.AccountID,
		OrderID: o.ID, CreatedAt: s.now()}
	for _, chain := range issued.Chains {
		var b []byte
		for _, der := range chain {
			b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
		}
		c.Chains = append(c.Chains, string(b))
	}
	return s.o.Store.FinishACMEOrder(ctx, c)
}

// checkCSRKey refuses, before the order is committed to issuance (so it
// stays ready for another CSR, as Boulder does), a certificate key that is
// the account key (a key that signs ACME requests should not also be a
// TLS key; Boulder refuses it too) or that the key policy refuses.
func (s *Server) checkCSRKey(ctx context.Context, acct *storage.ACMEAccount, csr *x509.CertificateRequest, caProfile string) error {
	if t, err := thumbprint(&jose.JSONWebKey{Key: csr.PublicKey}); err == nil && t == acct.Thumbprint {
		return prob("badCSR", http.StatusBadRequest, "the certificate's key must not be the account key")
	}
	if s.o.Policy == nil {
		return nil
	}
	return s.o.Policy.CheckKey(ctx, csr.PublicKey, caProfile)
}

// failFinalize settles a processing order whose issuance failed: back to
// pending when retrying later may work, else invalid with the problem. A
// refusal that names identifiers is rejectedIdentifier; any other refusal
// of the certificate (a lint, the profile) is about the CSR: badCSR.
func (s *Server) failFinalize(ctx context.Context, o *storage.ACMEOrder, err error) error {
	var p *problem
	switch {
	case len(identifierErrors(err)) > 0:
		p = rejected(err, core.DetailOf(err))
	case core.KindOf(err) == core.KindRejected:
		p = prob("badCSR", http.StatusBadRequest, core.DetailOf(err))
	default:
		p = toProblem(err)
	}
	to := "invalid"
	if core.KindOf(err) == core.KindUnavailable {
		to = "pending"
	}
	if _, uerr := s.o.Store.SetACMEOrderStatus(ctx, s.o.Name, o.ID, "processing", to, problemJSON(p)); uerr != nil {
		s.log.ErrorContext(ctx, "settling failed order", "order", o.ID, "err", uerr)
	}
	if p.Status >= 500 {
		return err // logged at the edge with its cause
	}
	return p
}

func parseCSR(b64 string) (*x509.CertificateRequest, error) {
	der, err := base64.RawURLEncoding.DecodeString(b64)
	if err != nil || len(der) == 0 {
		return nil, prob("badCSR", http.StatusBadRequest, "csr is not base64url DER")
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, prob("badCSR", http.StatusBadRequest, "csr cannot be parsed")
	}
	if err := ra.CheckCSRSignature(csr); err != nil {
		// A valid signature by an algorithm this CA does not take (Ed448,
		// MD5) is named as such, not called invalid.
		return nil, prob("badCSR", http.StatusBadRequest, core.DetailOf(err))
	}
	return csr, nil
}

func equalIdentifiers(a, b []Identifier) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// certificate serves a chain as PEM (§7.4.2); n selects an alternate
// chain, all of which are announced with Link rel="alternate".
func (s *Server) certificate(ctx context.Context, w http.ResponseWriter, r *http.Request, serial, n string) error {
	req, err := s.verify(ctx, w, r, kidOnly)
	if err != nil {
		return err
	}
	if !req.postAsGet() {
		return malformed("a certificate is read with POST-as-GET (empty payload)")
	}
	c, err := s.o.Store.ACMECert(ctx, s.o.Name, serial)
	if isNotFound(err) {
		return notFoundProblem("certificate")
	}
	if err != nil {
		return err
	}
	if c.AccountID != req.account.ID {
		return unauthorized("this certificate belongs to another account")
	}
	idx := 0
	if n != "" {
		if idx, err = strconv.Atoi(n); err != nil || idx < 1 || idx >= len(c.Chains) {
			return notFoundProblem("alternate chain")
		}
	}
	for i := range c.Chains {
		if i == idx {
			continue
		}
		u := s.url(pathCert, serial)
		if i > 0 {
			u = s.url(pathCert, serial, strconv.Itoa(i))
		}
		w.Header().Add("Link", link(u, "alternate"))
	}
	w.Header().Set("Content-Type", "application/pem-certificate-chain")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(c.Chains[idx]))
	return nil
}

// checkEABNames applies the names the account's EAB key was created with
// (`ca acme eab create --names`), if any: an order for anything outside
// them is rejectedIdentifier, one subproblem per name.
func (s *Server) checkEABNames(ctx context.Context, kid string, ids []Identifier) error {
	if kid == "" {
		return nil
	}
	rec, err := s.o.Store.ACMEEABKey(ctx, kid)
	if err != nil {
		return err
	}
	lim, err := ra.ParseLimits(rec.Names, nil)
	if err != nil || lim == nil {
		return err
	}
	if err := fromRAIdentifiers(lim.CheckIdentifiers(raIdentifiers(ids))); err != nil {
		return rejected(err, "the account's external account binding allows only "+strings.Join(lim.Names(), ", "))
	}
	return nil
}
