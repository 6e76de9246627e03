package acme

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/mail"
	"strings"
	"time"

	"go.step.sm/crypto/jose"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage"
)

// Accounts (RFC 8555 §7.3): newAccount with onlyReturnExisting and external
// account binding, update and deactivation, key rollover.

type accountRequest struct {
	Contact                *[]string       `json:"contact"`
	TermsOfServiceAgreed   bool            `json:"termsOfServiceAgreed"`
	OnlyReturnExisting     bool            `json:"onlyReturnExisting"`
	ExternalAccountBinding json.RawMessage `json:"externalAccountBinding"`
	Status                 string          `json:"status"`
}

type accountJSON struct {
	Status  string   `json:"status"`
	Contact []string `json:"contact,omitempty"`
	Orders  string   `json:"orders"`
}

func (s *Server) writeAccount(w http.ResponseWriter, status int, a *storage.ACMEAccount) error {
	w.Header().Set("Location", s.url(pathAccount, a.ID))
	return writeJSON(w, status, accountJSON{Status: a.Status, Contact: a.Contact, Orders: s.url(pathAccount, a.ID, "orders")})
}

func (s *Server) newAccount(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	req, err := s.verify(ctx, w, r, jwkOnly)
	if err != nil {
		return err
	}
	var ar accountRequest
	if err := decodePayload(req.payload, &ar); err != nil {
		return err
	}
	thumb, err := thumbprint(req.key)
	if err != nil {
		return err
	}
	existing, err := s.o.Store.ACMEAccountByThumbprint(ctx, s.o.Name, thumb)
	switch {
	case err == nil:
		if existing.Status != "valid" {
			return unauthorized("account is " + existing.Status)
		}
		return s.writeAccount(w, http.StatusOK, existing)
	case !isNotFound(err):
		return err
	case ar.OnlyReturnExisting:
		return prob("accountDoesNotExist", http.StatusBadRequest, "no account exists with this key")
	}
	if err := s.refuseBlockedKey(ctx, req.key); err != nil {
		return err
	}
	if s.o.Meta.TermsOfService != "" && !ar.TermsOfServiceAgreed {
		return malformed("the terms of service must be agreed to (termsOfServiceAgreed)")
	}
	var contact []string
	if ar.Contact != nil {
		if contact, err = checkContacts(*ar.Contact); err != nil {
			return err
		}
	}
	kid := ""
	if len(ar.ExternalAccountBinding) > 0 && s.o.EAB != nil {
		if kid, err = s.checkEAB(ctx, ar.ExternalAccountBinding, thumb, req.url); err != nil {
			return err
		}
	} else if s.o.Meta.ExternalAccountRequired {
		return prob("externalAccountRequired", http.StatusUnauthorized, "this endpoint requires an external account binding")
	}
	refund, err := s.limit(ctx, "new-account:"+core.ClientIP(r), s.o.Limits.NewAccountsPerIPPerHour,
		"too many new accounts from this address")
	if err != nil {
		return err
	}
	created := false
	defer func() {
		if !created {
			refund()
		}
	}()
	jwk, err := json.Marshal(req.key)
	if err != nil {
		return err
	}
	id, err := randomID()
	if err != nil {
		return err
	}
	a := &storage.ACMEAccount{ID: id, Endpoint: s.o.Name, Thumbprint: thumb, JWK: jwk, Status: "valid",
		Contact: contact, EABKID: kid, CreatedAt: s.now()}
	if err := s.o.Store.CreateACMEAccount(ctx, a); err != nil {
		if core.KindOf(err) == core.KindForbidden {
			return unauthorized("external account key is unknown, revoked or already used")
		}
		if core.KindOf(err) == core.KindConflict { // created concurrently with the same key
			if existing, e2 := s.o.Store.ACMEAccountByThumbprint(ctx, s.o.Name, thumb); e2 == nil {
				return s.writeAccount(w, http.StatusOK, existing)
			}
		}
		return err
	}
	created = true
	s.log.InfoContext(ctx, "acme account created", "account", id, "eab", kid != "")
	return s.writeAccount(w, http.StatusCreated, a)
}

// checkEAB verifies an externalAccountBinding (§7.3.4): an HS256 JWS over
// the account key, with the newAccount url and no nonce, whose kid is an
// unused key id of this endpoint. The MAC is checked in the HSM.
func (s *Server) checkEAB(ctx context.Context, raw json.RawMessage, accountThumb, url string) (string, error) {
	flat, hdr, err := parseFlat(raw)
	if err != nil {
		return "", malformed("externalAccountBinding is not a flattened JWS")
	}
	switch {
	case hdr.Alg != "HS256":
		return "", malformed("externalAccountBinding must use HS256")
	case hdr.Nonce != "":
		return "", malformed("externalAccountBinding must not have a nonce")
	case hdr.URL != url:
		return "", malformed("externalAccountBinding url must be the newAccount URL")
	case hdr.KID == "":
		return "", malformed("externalAccountBinding has no kid")
	}
	payload, err := base64.RawURLEncoding.DecodeString(*flat.Payload)
	if err != nil {
		return "", malformed("externalAccountBinding payload is not base64url")
	}
	k, err := parseJWK(payload)
	if err != nil {
		return "", malformed("externalAccountBinding payload is not a JWK")
	}
	if t, err := thumbprint(k); err != nil || t != accountThumb {
		return "", malformed("externalAccountBinding payload must be the account key")
	}
	mac, err := base64.RawURLEncoding.DecodeString(flat.Signature)
	if err != nil {
		return "", malformed("externalAccountBinding signature is not base64url")
	}
	rec, err := s.o.Store.ACMEEABKey(ctx, hdr.KID)
	if err != nil && !isNotFound(err) {
		return "", err
	}
	if err != nil || rec.Endpoint != s.o.Name || !rec.RevokedAt.IsZero() || rec.AccountID != "" {
		return "", unauthorized("external account key is unknown, revoked or already used")
	}
	if err := s.o.EAB.VerifyMAC(ctx, hdr.KID, []byte(flat.Protected+"."+*flat.Payload), mac); err != nil {
		if core.KindOf(err) == core.KindUnavailable {
			return "", err
		}
		return "", unauthorized("external account binding MAC is invalid")
	}
	return hdr.KID, nil
}

// checkContacts accepts up to 10 mailto: addresses (§7.3, and what every
// private CA needs); anything else is unsupportedContact/invalidContact.
func checkContacts(in []string) ([]string, error) {
	if len(in) > 10 {
		return nil, prob("invalidContact", http.StatusBadRequest, "at most 10 contacts")
	}
	out := make([]string, 0, len(in))
	for _, c := range in {
		// A URI's scheme has no case (RFC 3986 §3.1): MAILTO: is mailto:,
		// stored as mailto:.
		scheme, addr, ok := strings.Cut(c, ":")
		if !ok || !strings.EqualFold(scheme, "mailto") {
			return nil, prob("unsupportedContact", http.StatusBadRequest, "only mailto: contacts are supported")
		}
		// No domain literal (a@[10.0.0.1]): mail goes to a domain.
		a, err := mail.ParseAddress(addr)
		if err != nil || a.Address != addr || strings.ContainsAny(addr, "?,[]") || len(addr) > 254 {
			return nil, prob("invalidContact", http.StatusBadRequest, "contact "+quote(c)+" is not a plain email address")
		}
		out = append(out, "mailto:"+addr)
	}
	return out, nil
}

func (s *Server) account(ctx context.Context, w http.ResponseWriter, r *http.Request, id string) error {
	req, err := s.verify(ctx, w, r, kidOnly)
	if err != nil {
		return err
	}
	if req.account.ID != id {
		return unauthorized("the request is not signed by this account")
	}
	a := req.account
	if req.postAsGet() {
		return s.writeAccount(w, http.StatusOK, a)
	}
	var ar accountRequest
	if err := decodePayload(req.payload, &ar); err != nil {
		return err
	}
	status, contact := a.Status, a.Contact
	switch ar.Status {
	case "", "valid":
	case "deactivated": // §7.3.6
		status = "deactivated"
	default:
		return malformed("an account's status can only be changed to deactivated")
	}
	if ar.Contact != nil {
		if contact, err = checkContacts(*ar.Contact); err != nil {
			return err
		}
	}
	if err := s.o.Store.UpdateACMEAccount(ctx, s.o.Name, a.ID, status, contact); err != nil {
		return err
	}
	a.Status, a.Contact = status, contact
	return s.writeAccount(w, http.StatusOK, a)
}

// keyChange rolls the account key over (§7.3.5): the outer JWS is signed by
// the old key (kid), the inner by the new key (jwk) over {account, oldKey}.
func (s *Server) keyChange(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	req, err := s.verify(ctx, w, r, kidOnly)
	if err != nil {
		return err
	}
	flat, hdr, err := parseFlat(req.payload)
	if err != nil {
		return malformed("keyChange payload must be a flattened JWS signed by the new key")
	}
	if hdr.URL != req.url {
		return malformed("inner JWS url must equal the outer url")
	}
	if hdr.KID != "" || len(hdr.JWK) == 0 {
		return malformed("inner JWS must carry the new key as jwk")
	}
	if hdr.Nonce != "" {
		return malformed("inner JWS must not carry a nonce (RFC 8555 §7.3.5)")
	}
	inner, err := jose.ParseJWS(flat.canonical())
	if err != nil || len(inner.Signatures) != 1 || inner.Signatures[0].Protected.JSONWebKey == nil {
		return malformed("inner JWS cannot be parsed")
	}
	newKey := inner.Signatures[0].Protected.JSONWebKey.Public()
	if err := checkKey(&newKey, hdr.Alg); err != nil {
		return err
	}
	if err := s.refuseBlockedKey(ctx, &newKey); err != nil {
		return err
	}
	payload, err := inner.Verify(&newKey)
	if err != nil {
		return malformed("inner JWS signature is invalid")
	}
	var kc struct {
		Account string          `json:"account"`
		OldKey  json.RawMessage `json:"oldKey"`
	}
	if err := decodePayload(payload, &kc); err != nil {
		return err
	}
	a := req.account
	if kc.Account != s.url(pathAccount, a.ID) {
		return malformed("inner payload account is not the signing account")
	}
	old, err := parseJWK(kc.OldKey)
	if err != nil {
		return err
	}
	if t, err := thumbprint(old); err != nil || t != a.Thumbprint {
		return malformed("inner payload oldKey is not the current account key")
	}
	newThumb, err := thumbprint(&newKey)
	if err != nil {
		return err
	}
	if newThumb == a.Thumbprint { // Boulder answers the same
		return malformed("the new key is already this account's key")
	}
	jwk, err := json.Marshal(&newKey)
	if err != nil {
		return err
	}
	other, err := s.o.Store.ChangeACMEAccountKey(ctx, s.o.Name, a.ID, a.Thumbprint, newThumb, jwk)
	if err != nil {
		if other != "" {
			p := prob("malformed", http.StatusConflict, "the new key is already used by another account")
			p.location = s.url(pathAccount, other)
			return p
		}
		return err
	}
	s.log.InfoContext(ctx, "acme account key changed", "account", a.ID)
	return s.writeAccount(w, http.StatusOK, a)
}

// limit counts one event against a configured limit (0: none) and
// returns what gives it back: the caller refunds an account or order it
// did not create, so the limits count what was created.
func (s *Server) limit(ctx context.Context, key string, perHour int, detail string) (refund func(), err error) {
	if s.o.RateLimiter == nil || perHour <= 0 {
		return func() {}, nil
	}
	key = "acme:" + s.o.Name + ":" + key
	ok, retry, err := s.o.RateLimiter.Allow(ctx, key, perHour, time.Hour)
	if err != nil {
		return nil, err
	}
	if !ok {
		p := prob("rateLimited", http.StatusTooManyRequests, detail)
		p.retryAfter = max(retry, time.Second)
		return nil, p
	}
	return func() {
		if err := s.o.RateLimiter.Refund(context.WithoutCancel(ctx), key, time.Hour); err != nil {
			s.log.WarnContext(ctx, "giving back a rate-limit count", "err", err)
		}
	}, nil
}

// randomID is a 128-bit random id, base64url: unguessable object URLs.
func randomID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", errors.Join(errors.New("reading random id"), err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// refuseBlockedKey refuses a new account key that is blocked (a
// certificate with it was revoked for keyCompromise, or an operator
// blocked it), as Boulder does: a key known to be compromised opens no
// account. Existing accounts and revocation signed by such a key (how a
// compromise is reported) are not affected.
func (s *Server) refuseBlockedKey(ctx context.Context, k *jose.JSONWebKey) error {
	spki, err := x509.MarshalPKIXPublicKey(k.Key)
	if err != nil {
		return prob("badPublicKey", http.StatusBadRequest, "JWK is not a usable public key")
	}
	blocked, err := s.o.Store.KeyBlocked(ctx, core.KeyHash(spki))
	if err != nil {
		return err
	}
	if blocked {
		return prob("badPublicKey", http.StatusBadRequest, "this key is blocked (reported compromised); use another account key")
	}
	return nil
}
