package api

import (
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/ra"
	"github.com/strongroom-pki/strongroom/storage"
)

// ListResponse is one page of GET /certificates.
type ListResponse struct {
	Certificates []CertificateResponse `json:"certificates"`
	// NextCursor, when not empty, fetches the next page (?cursor=).
	NextCursor string `json:"next_cursor,omitempty"`
}

func (a *API) list(c *gin.Context) {
	var f storage.CertFilter
	switch s := core.CertStatus(c.Query("status")); s {
	case "", core.StatusValid, core.StatusRevoked:
		f.Status = s
	default:
		a.fail(c, core.Errorf(core.KindMalformed, "status must be valid or revoked"))
		return
	}
	f.Name, f.IssuerID = c.Query("name"), c.Query("issuer")
	for q, v := range map[string]string{"name": f.Name, "issuer": f.IssuerID} {
		if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
			a.fail(c, core.Errorf(core.KindMalformed, "%s must be UTF-8 text without NUL characters", q))
			return
		}
	}
	if u := c.Query("under"); u != "" {
		var err error
		if f.Under, err = ra.ParseDNSSuffix(u); err != nil {
			a.fail(c, core.Errorf(core.KindMalformed, "under: %s", core.DetailOf(err)))
			return
		}
	}
	for _, p := range []struct {
		q   string
		dst *time.Time
	}{{"expiring_before", &f.ExpiringBefore}, {"expiring_after", &f.ExpiringAfter}} {
		if v := c.Query(p.q); v != "" {
			t, err := time.Parse(time.RFC3339, strings.ToUpper(v)) // RFC 3339 §5.6 allows "t" and "z"
			if err != nil {
				a.fail(c, core.Errorf(core.KindMalformed, "%s must be an RFC 3339 time", p.q))
				return
			}
			// The filter's zero time means "no bound"; no certificate
			// ends before 1970, so a bound before then is that instant.
			*p.dst = latest(t, time.Unix(0, 0))
		}
	}
	if cur := c.Query("cursor"); cur != "" {
		s, err := core.ParseSerial(cur)
		if err != nil {
			a.fail(c, core.Errorf(core.KindMalformed, "bad cursor"))
			return
		}
		f.After = s
	}
	if l := c.Query("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			a.fail(c, core.Errorf(core.KindMalformed, "limit must be 1-1000"))
			return
		}
		f.Limit = n
	}
	if lim := principalOf(c).limits; lim != nil {
		f.Keep = func(r *core.Certificate) bool { return ra.MayRead(lim, r) }
	}
	rows, next, err := a.store.ListCertificates(c.Request.Context(), f)
	if err != nil {
		a.fail(c, err)
		return
	}
	out := ListResponse{Certificates: make([]CertificateResponse, len(rows)), NextCursor: string(next)}
	for i := range rows {
		out.Certificates[i] = recordResponse(&rows[i], false)
	}
	c.JSON(http.StatusOK, out)
}

// IssuerResponse describes one issuer.
type IssuerResponse struct {
	ID string `json:"id"`
	// Default: requests naming no issuer get this one, the first
	// configured intermediate that is neither revoked nor expired.
	Default bool `json:"default"`
	// Status is valid, revoked (it signs no new certificate, only OCSP
	// answers and CRLs for what it issued) or expired.
	Status           string    `json:"status"`
	RevokedAt        time.Time `json:"revoked_at,omitzero"`
	RevocationReason string    `json:"revocation_reason,omitempty"`
	Subject          string    `json:"subject"`
	NotBefore        time.Time `json:"not_before"`
	NotAfter         time.Time `json:"not_after"`
	Certificate      string    `json:"certificate"` // PEM
	Chain            string    `json:"chain"`       // PEM: the issuer up to the root
	// NameConstraints are those of the chain's certificates that carry
	// any, from the issuer's own up: every name the issuer issues must be
	// allowed by each.
	NameConstraints []NameConstraintsResponse `json:"name_constraints,omitempty"`
}

// NameConstraintsResponse is one CA certificate's name constraints.
type NameConstraintsResponse struct {
	Subject string   `json:"subject"` // the CA certificate's common name
	Permit  []string `json:"permit,omitempty"`
	Exclude []string `json:"exclude,omitempty"`
}

func (a *API) listIssuers(c *gin.Context) {
	var out []IssuerResponse
	for _, is := range a.issuers.Issuers() {
		cert := is.Certificate()
		st := a.issuers.IssuerStatus(is.ID())
		r := IssuerResponse{ID: is.ID(), Default: is.ID() == a.issuers.DefaultIssuer(), Status: st.String(),
			Subject: cert.Subject.String(), NotBefore: cert.NotBefore, NotAfter: cert.NotAfter,
			Certificate: pemOf(cert), Chain: pemOf(is.Chain()...)}
		if st.Revoked {
			r.RevokedAt, r.RevocationReason = st.RevokedAt, st.Reason.String()
		}
		for _, cc := range is.ChainConstraints() {
			permit, exclude := cc.Subtrees()
			r.NameConstraints = append(r.NameConstraints, NameConstraintsResponse{Subject: cc.Subject, Permit: permit, Exclude: exclude})
		}
		out = append(out, r)
	}
	c.JSON(http.StatusOK, gin.H{"issuers": out})
}

// latest is the later of a and b.
func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
