package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/strongroom-pki/strongroom/ca"
	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/ra"
)

// Idempotent issuance (the Idempotency-Key header of
// draft-ietf-httpapi-idempotency-key-header, as AWS Private CA's
// IdempotencyToken and Stripe do it). A deploy job whose POST timed out
// cannot know whether a certificate was issued; resending the same request
// with the same key returns the certificate of the first attempt instead
// of issuing a second one. Keys belong to the principal that sent them and
// are remembered for a day. The same key with a different request (CSR,
// profile, issuer, lifetime, extra SANs) is refused with 422; a retry while
// the first attempt still runs gets 409 with Retry-After. A first attempt
// that failed frees its key; one cut short by a crash frees it after
// idemAbandoned.
const (
	idemHeader    = "Idempotency-Key"
	idemKeep      = 24 * time.Hour
	idemAbandoned = 5 * time.Minute
	idemPruneGap  = 10 * time.Minute
	idemMaxLen    = 255
)

// idempotencyKey reads the header: a Structured Field string ("…"), or the
// bare value most clients send; 1 to 255 printable ASCII characters.
func idempotencyKey(c *gin.Context) (string, bool, error) {
	vals := c.Request.Header.Values(idemHeader)
	if len(vals) == 0 {
		return "", false, nil
	}
	if len(vals) > 1 {
		return "", false, core.Errorf(core.KindMalformed, "send one %s header", idemHeader)
	}
	k := strings.TrimSpace(vals[0])
	if len(k) >= 2 && k[0] == '"' && k[len(k)-1] == '"' {
		k = k[1 : len(k)-1]
	}
	if k == "" || len(k) > idemMaxLen || strings.ContainsFunc(k, func(r rune) bool { return r < 0x20 || r > 0x7e || r == '"' || r == '\\' }) {
		return "", false, core.Errorf(core.KindMalformed, "%s must be 1 to %d printable ASCII characters", idemHeader, idemMaxLen)
	}
	return k, true, nil
}

// fingerprint identifies what was asked for, independent of encoding (PEM
// or DER, JSON or application/pkcs10, field order).
func fingerprint(req ra.Request) []byte {
	h := sha256.New()
	field := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	field(req.CSR.Raw)
	field([]byte(req.Profile))
	field([]byte(req.Issuer))
	field([]byte(strconv.FormatInt(int64(req.Lifetime), 10)))
	sans := slices.Clone(req.ExtraSANs)
	slices.Sort(sans)
	for _, s := range sans {
		field([]byte(s))
	}
	return h.Sum(nil)
}

// idem is one issuance under an Idempotency-Key.
type idem struct {
	a              *API
	principal, key string
}

// claimIdempotent takes the key for this request. It returns the idem to
// finish or release when the caller is to issue, or answers the request
// itself (a replay, or a refusal) and returns nil.
// fp identifies the request (fingerprint); mismatch is the refusal of the
// key with another request; same are other fingerprints of this request
// (the same request written another way). keepUntil (zero: a day) is how
// long the claim stands once finished.
func (a *API) claimIdempotent(c *gin.Context, req ra.Request, key string, fp []byte, mismatch string, keepUntil time.Time, same ...[]byte) (*idem, bool) {
	// The claim, and its finish or release, run to the end even if the
	// client hangs up: that client is the one who will retry, and a claim
	// recorded but unanswered, or a serial issued but not recorded under
	// the key, would lock the key or issue twice.
	ctx := context.WithoutCancel(c.Request.Context())
	now := a.now()
	a.pruneIdempotency(c, now)
	rec, err := a.store.ClaimIdempotencyKey(ctx, req.Principal, key, fp, now, now.Add(-idemAbandoned), now.Add(-idemKeep), keepUntil)
	switch {
	case err != nil:
		a.fail(c, err)
		return nil, false
	case rec == nil:
		return &idem{a: a, principal: req.Principal, key: key}, true
	case !bytes.Equal(rec.RequestHash, fp) && !slices.ContainsFunc(same, func(h []byte) bool { return bytes.Equal(rec.RequestHash, h) }):
		a.fail(c, core.Errorf(core.KindRejected, "%s", mismatch))
	case rec.Serial == "":
		c.Header("Retry-After", "1")
		a.fail(c, core.Errorf(core.KindConflict, "the same request is still being processed"))
	default:
		a.replay(c, req, rec.Serial)
	}
	return nil, false
}

// finish records the serial issued under the key; a failed issuance frees
// the key instead. A failure to record is logged, not answered: the
// certificate exists and the client gets it.
func (i *idem) finish(c *gin.Context, iss *ca.Issued, err error) {
	ctx := context.WithoutCancel(c.Request.Context())
	if err != nil {
		if rerr := i.a.store.ReleaseIdempotencyKey(ctx, i.principal, i.key); rerr != nil {
			i.a.log.ErrorContext(ctx, "releasing idempotency key", "err", rerr)
		}
		return
	}
	if ferr := i.a.store.FinishIdempotencyKey(ctx, i.principal, i.key, iss.Serial); ferr != nil {
		i.a.log.ErrorContext(ctx, "recording idempotency key", "serial", string(iss.Serial), "err", ferr)
	}
}

// replay answers with the certificate issued under the key, as the first
// answer was, marked Idempotent-Replayed. A certificate revoked since is
// not handed out again: a deploy job retrying with the same key would
// install it.
func (a *API) replay(c *gin.Context, req ra.Request, serial core.Serial) {
	r, err := a.auth.Certificate(c.Request.Context(), serial)
	if err == nil && r.Status == core.StatusRevoked {
		err = core.Errorf(core.KindConflict, "certificate %s, issued under this Idempotency-Key, has since been revoked; send a new Idempotency-Key to issue another", serial)
		if strings.HasPrefix(req.Principal, ra.RenewalPrincipal("")) {
			err = core.Errorf(core.KindConflict, "this certificate was renewed as %s, which has since been revoked; a certificate renews once, so request a new one", serial)
		}
	}
	if err != nil {
		a.fail(c, err)
		return
	}
	cert, err := x509.ParseCertificate(r.DER)
	if err != nil {
		a.fail(c, err)
		return
	}
	chain := append([]*x509.Certificate{cert}, a.sentAfter(r.IssuerID)...)
	c.Header("Idempotent-Replayed", "true")
	a.writeIssued(c, req, &ca.Issued{Serial: serial, Certificate: cert, Chain: chain, IssuerID: r.IssuerID, Profile: r.Profile, Origin: r.Origin},
		core.CertStatus(r.Status))
}

// pruneIdempotency deletes expired keys, at most every idemPruneGap per
// process.
func (a *API) pruneIdempotency(c *gin.Context, now time.Time) {
	next := a.idemPrune.Load()
	if now.Unix() < next || !a.idemPrune.CompareAndSwap(next, now.Add(idemPruneGap).Unix()) {
		return
	}
	if _, err := a.store.PruneIdempotencyKeys(c.Request.Context(), now.Add(-idemKeep), now); err != nil {
		a.log.WarnContext(c.Request.Context(), "pruning idempotency keys", "err", err)
	}
}
