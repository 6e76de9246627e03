package web

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/strongroom-pki/strongroom/api"
	"github.com/strongroom-pki/strongroom/ca"
	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/ra"
	"github.com/strongroom-pki/strongroom/storage"
)

type listData struct {
	Status, Name, Under string
	Rows                []core.Certificate
	Next                string // query string of the next page, or ""
}

func (w *Console) list(c *gin.Context, op *operator) {
	if !w.require(c, op, api.ScopeRead) {
		return
	}
	d := listData{Status: c.Query("status"), Name: strings.TrimSpace(c.Query("name"))}
	if u := c.Query("under"); u != "" {
		var err error
		if d.Under, err = ra.ParseDNSSuffix(u); err != nil {
			w.fail(c, op, err)
			return
		}
	}
	f := storage.CertFilter{Name: d.Name, Under: d.Under, Limit: 50}
	switch s := core.CertStatus(d.Status); s {
	case "", core.StatusValid, core.StatusRevoked:
		f.Status = s
	default:
		w.fail(c, op, core.Errorf(core.KindMalformed, "status must be valid or revoked"))
		return
	}
	if cur := c.Query("after"); cur != "" {
		s, err := core.ParseSerial(cur)
		if err != nil {
			w.fail(c, op, core.Errorf(core.KindMalformed, "bad page cursor"))
			return
		}
		f.After = s
	}
	if op.limits != nil {
		f.Keep = func(r *core.Certificate) bool { return ra.MayRead(op.limits, r) }
	}
	rows, next, err := w.o.Store.ListCertificates(c.Request.Context(), f)
	if err != nil {
		w.fail(c, op, err)
		return
	}
	d.Rows = rows
	if next != "" {
		q := url.Values{"after": {string(next)}}
		if d.Status != "" {
			q.Set("status", d.Status)
		}
		if d.Name != "" {
			q.Set("name", d.Name)
		}
		if d.Under != "" {
			q.Set("under", d.Under)
		}
		d.Next = q.Encode()
	}
	w.render(c, http.StatusOK, "list", page{Title: "Certificates", Op: op, Data: d})
}

type detailData struct {
	Cert      *core.Certificate
	PEM       string
	MayRevoke bool
	Reasons   []string
}

// revokeReasons are the RFC 5280 reasons an operator may choose.
var revokeReasons = []string{"unspecified", "keyCompromise", "affiliationChanged", "superseded", "cessationOfOperation", "privilegeWithdrawn"}

func (w *Console) record(c *gin.Context, op *operator) (*core.Certificate, bool) {
	serial, err := core.ParseSerial(c.Param("serial"))
	if err != nil {
		w.fail(c, op, err)
		return nil, false
	}
	r, err := w.o.Authority.Certificate(c.Request.Context(), serial)
	if err == nil && (r.Status == core.StatusReserved || !ra.MayRead(op.limits, r)) {
		err = core.ErrNotFound // never handed out, or another team's
	}
	if err != nil {
		w.fail(c, op, err)
		return nil, false
	}
	return r, true
}

func (w *Console) detail(c *gin.Context, op *operator) {
	if !w.require(c, op, api.ScopeRead) {
		return
	}
	r, ok := w.record(c, op)
	if !ok {
		return
	}
	w.render(c, http.StatusOK, "detail", page{Title: "Certificate " + string(r.Serial), Op: op, Data: detailData{
		Cert: r, PEM: pemOf(r.DER), MayRevoke: op.may(api.ScopeRevoke) && r.Status == core.StatusValid && ra.MayRevoke(op.limits, r) == nil, Reasons: revokeReasons}})
}

func (w *Console) revoke(c *gin.Context, op *operator) {
	if !w.require(c, op, api.ScopeRevoke) {
		return
	}
	r, ok := w.record(c, op)
	if !ok {
		return
	}
	reason, err := core.ParseReason(c.PostForm("reason"))
	if err != nil {
		w.fail(c, op, err)
		return
	}
	if err := ra.MayRevoke(op.limits, r); err != nil {
		w.fail(c, op, err)
		return
	}
	revoke := func() error {
		return w.o.Authority.Revoke(c.Request.Context(), r.Serial, reason, time.Time{}, op.principal())
	}
	if reason == core.ReasonKeyCompromise && ra.FullAdmin(op.limits, op.may(api.ScopeAdmin)) {
		revoke = func() error {
			return w.o.Authority.RevokeAndBlockKey(c.Request.Context(), r.Serial, time.Time{}, op.principal())
		}
	}
	if err := revoke(); err != nil {
		w.fail(c, op, err)
		return
	}
	w.log.InfoContext(c.Request.Context(), "console: certificate revoked", "serial", string(r.Serial), "reason", reason.String(), "by", op.principal())
	c.Redirect(http.StatusSeeOther, "/ui/certificates/"+string(r.Serial))
}

type issueData struct {
	Profiles []string
	Profile  string
	CSR      string
	Chain    string
	Serial   string
}

func (w *Console) issuePage(c *gin.Context, op *operator) {
	if !w.require(c, op, api.ScopeIssue) {
		return
	}
	w.render(c, http.StatusOK, "issue", page{Title: "Issue a certificate", Op: op, Data: issueData{Profiles: w.o.Profiles}})
}

func (w *Console) issuePost(c *gin.Context, op *operator) {
	if !w.require(c, op, api.ScopeIssue) {
		return
	}
	d := issueData{Profiles: w.o.Profiles, Profile: c.PostForm("profile"), CSR: c.PostForm("csr")}
	issue := func() (*ca.Issued, error) { return w.issue(c, op, d) }
	var iss *ca.Issued
	var err error
	if w.o.WithinCap != nil {
		var retry time.Duration
		if iss, retry, err = w.o.WithinCap(c.Request.Context(), op.principal(), issue); retry > 0 {
			api.SetRetryAfter(c.Writer.Header(), retry)
		}
	} else {
		iss, err = issue()
	}
	if err != nil {
		status, msg := w.statusOf(c, err)
		w.render(c, status, "issue", page{Title: "Issue a certificate", Op: op, Error: msg, Data: d})
		return
	}
	d.Chain, d.Serial = chainPEM(iss), string(iss.Serial)
	w.render(c, http.StatusCreated, "issue", page{Title: "Issued", Op: op, Data: d})
}

func (w *Console) issue(c *gin.Context, op *operator, d issueData) (*ca.Issued, error) {
	der, err := api.CSRDER([]byte(d.CSR))
	if err != nil {
		return nil, err
	}
	csr, err := ra.ParseCSR(der)
	if err != nil {
		return nil, err
	}
	return w.o.Authority.Issue(c.Request.Context(), ra.Request{CSR: csr, Profile: d.Profile, Principal: op.principal(), Limits: op.limits, Admin: op.may(api.ScopeAdmin)})
}

type issuerRow struct {
	ID, Subject, Key string
	Default          bool // new certificates come from it
	// Status is "valid", "revoked" or "expired"; Revoked says when and why.
	Status, Revoked string
	NotBefore       time.Time
	NotAfter        time.Time
	PEM             string
}

func (w *Console) issuers(c *gin.Context, op *operator) {
	if !w.require(c, op, api.ScopeRead) {
		return
	}
	var rows []issuerRow
	for _, is := range w.o.Issuers.Issuers() {
		cert, st := is.Certificate(), w.o.Issuers.IssuerStatus(is.ID())
		row := issuerRow{ID: is.ID(), Subject: cert.Subject.String(), Key: ca.KeyType(cert.PublicKey), Status: st.String(),
			Default: is.ID() == w.o.Issuers.DefaultIssuer(), NotBefore: cert.NotBefore, NotAfter: is.NotAfter(), PEM: pemOf(cert.Raw)}
		if st.Revoked {
			row.Revoked = st.RevokedAt.UTC().Format(time.RFC3339) + " (" + st.Reason.String() + ")"
		}
		rows = append(rows, row)
	}
	w.render(c, http.StatusOK, "issuers", page{Title: "Issuers", Op: op, Data: rows})
}
