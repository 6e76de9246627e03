package ocsp

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/strongroom-pki/strongroom/core"
)

// KeySource gives the responder key of an issuer, generated and kept in the
// HSM. It is asked again at each renewal, so a source that rotates the key
// gets the new key certified.
type KeySource interface {
	ResponderKey(ctx context.Context, issuerID string) (crypto.Signer, error)
}

// ResponderStore, when the KeySource implements it, remembers the newest
// responder certificate of each issuer, so that a node starting (or due to
// renew) takes one that is still fresh — made by itself before a restart
// or by another node — instead of rotating the key and certifying it
// again each time.
type ResponderStore interface {
	// ReusableResponder returns the signer of the issuer's current
	// responder key and the last certificate recorded for the issuer, or
	// a nil certificate when there is none. The responder checks that the
	// certificate is for that key, from the issuer, and not yet due.
	ReusableResponder(ctx context.Context, issuerID string) (crypto.Signer, []byte, error)
	// RecordResponder records a certificate the responder just had issued.
	RecordResponder(ctx context.Context, issuerID string, certDER []byte) error
}

// CertIssuer signs a delegated responder certificate for pub with the key
// of issuerID, from template (which the responder fills: serial, subject,
// validity, key usage, EKU id-kp-OCSPSigning, id-pkix-ocsp-nocheck), and
// returns the DER certificate.
type CertIssuer interface {
	SignCertificate(ctx context.Context, issuerID string, template *x509.Certificate, pub crypto.PublicKey) ([]byte, error)
}

var (
	oidOCSPNoCheck = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 5}
	asn1NULL       = []byte{0x05, 0x00}
)

// signingKey is what signs responses for one issuer.
type signingKey struct {
	signer      crypto.Signer
	cert        *x509.Certificate // delegated responder certificate; nil when the issuer key signs
	responderID []byte            // ResponderID, DER
	certs       []byte            // certs [0] EXPLICIT SEQUENCE OF Certificate, or nil
	alg         sigAlg
	notAfter    time.Time // responses must not outlive the certificate
	renewAt     time.Time
}

func newSigningKey(signer crypto.Signer, cert *x509.Certificate) (*signingKey, error) {
	alg, err := signatureAlgorithm(signer.Public())
	if err != nil {
		return nil, err
	}
	rid, err := responderIDByKey(signer.Public())
	if err != nil {
		return nil, err
	}
	k := &signingKey{signer: signer, cert: cert, responderID: rid, alg: alg}
	if cert != nil {
		var b cryptobyte.Builder
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddBytes(cert.Raw) })
		})
		if k.certs, err = b.Bytes(); err != nil {
			return nil, err
		}
		k.notAfter = cert.NotAfter
		// Renew when a third of the validity remains.
		k.renewAt = cert.NotAfter.Add(-cert.NotAfter.Sub(cert.NotBefore) / 3)
	}
	return k, nil
}

// keyring holds the current signing key of one issuer and renews it.
type keyring struct {
	iss      *issuer
	cur      atomic.Pointer[signingKey]
	mu       sync.Mutex // serialises renewals
	renewing atomic.Bool
	// failedAt, failed and failures are the last renewal that failed and
	// how many failed in a row (under mu): renewals within renewRetry of
	// it get its error instead of trying again — each try rotates the
	// responder key in the HSM and certifies it, so a certification that
	// keeps failing (the issuer's key damaged, its token away) would
	// otherwise add a key version per request, with a key to answer with
	// (a renewal in the background) or without.
	failedAt time.Time
	failed   error
	failures int

	// A delegated responder certificate carries id-pkix-ocsp-nocheck:
	// clients never learn it was revoked, so the responder must stop using
	// it at once. used lists the delegated keys this responder signed with
	// (until they expire), so a revocation event names one by its serial;
	// retired holds those revoked, whose answers caches no longer serve
	// and whose key is never certified again.
	hmu     sync.Mutex
	used    []*signingKey
	retired atomic.Pointer[[]*signingKey] // replaced, never changed
	// signers holds what this node knows of the responder certificates
	// that signed cached answers, its own and other nodes' (signers.go);
	// replaced under hmu, never changed.
	signers atomic.Pointer[map[string]signerInfo]
}

// adopt makes k the current key and remembers it, unless its certificate
// or its key was revoked. kr.mu is held.
func (kr *keyring) adopt(k *signingKey, now time.Time) error {
	kr.hmu.Lock()
	defer kr.hmu.Unlock()
	if k.cert != nil {
		if kr.revokedKey(k.signer.Public()) { // revoked while it was being read
			return fmt.Errorf("the OCSP responder certificate of issuer %s was revoked", kr.iss.id)
		}
		serial := core.SerialFromBig(k.cert.SerialNumber)
		if kr.signerRevoked(serial) { // known revoked from another node's answers
			return fmt.Errorf("the OCSP responder certificate %s of issuer %s was revoked", serial, kr.iss.id)
		}
		// A certificate adopted again (dropFailing) is listed once, as k,
		// so that retire stops k.
		kr.used = slices.DeleteFunc(kr.used, func(u *signingKey) bool { return !now.Before(u.notAfter) || u.cert.Equal(k.cert) })
		kr.used = append(kr.used, k)
		kr.knowSigner(serial, k.notAfter, now)
	}
	kr.cur.Store(k)
	return nil
}

// revokedKey reports whether pub is the key of a revoked responder
// certificate.
func (kr *keyring) revokedKey(pub crypto.PublicKey) bool {
	if p := kr.retired.Load(); p != nil {
		for _, k := range *p {
			if publicKeysEqual(k.signer.Public(), pub) {
				return true
			}
		}
	}
	return false
}

// retire stops using the responder certificate with serial if this
// responder signed with it, and reports whether it did: the certificate
// and its key are not used again, answers signed under it are not served
// from the caches, and a new certificate for a new key is issued.
func (r *Responder) retire(iss *issuer, serial core.Serial) bool {
	kr := &iss.kr
	kr.hmu.Lock()
	i := slices.IndexFunc(kr.used, func(u *signingKey) bool { return core.SerialFromBig(u.cert.SerialNumber) == serial })
	if i < 0 {
		kr.hmu.Unlock()
		return false
	}
	k := kr.used[i]
	kr.used = slices.Delete(kr.used, i, i+1)
	var retired []*signingKey
	if p := kr.retired.Load(); p != nil {
		retired = slices.DeleteFunc(slices.Clone(*p), func(o *signingKey) bool { return !r.now().Before(o.notAfter) })
	}
	retired = append(retired, k)
	kr.retired.Store(&retired)
	kr.hmu.Unlock()
	kr.cur.CompareAndSwap(k, nil)
	r.fast.dropAll()
	r.log.Warn("OCSP responder certificate revoked; replacing it and its key", "issuer", iss.id, "serial", serial)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := r.renew(ctx, kr, nil); err != nil {
			r.log.Error("replacing the revoked OCSP responder certificate", "issuer", iss.id, "err", err)
		}
	}()
	return true
}

// dropFailing stops using k, a delegated responder key that failed to
// sign: an HSM key the HSM dropped (found damaged, or destroyed by an
// officer) never signs again, and keeping it would answer internalError
// until the certificate's renewal, weeks away. The next request gets a key
// as at start: the recorded certificate again if its key signs there
// (ResponderStore), else a key from the KeySource, which replaces a
// damaged one. The issuer's own key is kept: there is no other.
func (r *Responder) dropFailing(kr *keyring, k *signingKey) {
	if k.cert != nil && kr.cur.CompareAndSwap(k, nil) {
		r.log.Warn("OCSP responder key failed to sign; the next request gets it again or a new one", "issuer", kr.iss.id,
			"serial", core.SerialFromBig(k.cert.SerialNumber))
	}
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(b)
}

// get returns a usable key: it renews synchronously when there is none or
// it is about to expire, and in the background once it is due for renewal.
func (r *Responder) key(ctx context.Context, kr *keyring) (*signingKey, error) {
	now := r.now()
	k := kr.cur.Load()
	if k != nil && (k.cert == nil || now.Before(k.notAfter.Add(-time.Minute))) {
		// Renewal can only help while the issuer outlives the certificate.
		canExtend := k.cert != nil && kr.iss.cert.NotAfter.After(k.notAfter)
		if canExtend && !now.Before(k.renewAt) && kr.renewing.CompareAndSwap(false, true) {
			go func() {
				defer kr.renewing.Store(false)
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				if _, err := r.renew(ctx, kr, k); err != nil {
					r.failures.Warn(ctx, r.log, "renewing OCSP responder certificate (the current one answers meanwhile)", "issuer", kr.iss.id, "err", err)
				}
			}()
		}
		return k, nil
	}
	return r.renew(ctx, kr, k)
}

// renew makes a new signing key unless another goroutine already replaced
// old.
func (r *Responder) renew(ctx context.Context, kr *keyring, old *signingKey) (*signingKey, error) {
	kr.mu.Lock()
	defer kr.mu.Unlock()
	if k := kr.cur.Load(); k != old && k != nil {
		return k, nil
	}
	if kr.failed != nil && r.now().Before(kr.failedAt.Add(renewRetry(kr.failures))) {
		return nil, kr.failed
	}
	k, err := r.renewLocked(ctx, kr, old)
	if err != nil {
		kr.failedAt, kr.failed, kr.failures = r.now(), err, kr.failures+1
	} else {
		kr.failed, kr.failures = nil, 0
	}
	return k, err
}

// renewRetry is how long a renewal is not tried again after failures
// failed ones in a row: 5 s, doubling up to 10 minutes.
func renewRetry(failures int) time.Duration {
	return min(5*time.Second<<min(failures-1, 10), 10*time.Minute)
}

// renewLocked is renew under kr.mu.
func (r *Responder) renewLocked(ctx context.Context, kr *keyring, old *signingKey) (*signingKey, error) {
	var k *signingKey
	var err error
	reused := false
	switch {
	case r.signWithIssuer:
		k, err = newSigningKey(kr.iss.signer, nil)
	default:
		if k = r.reuseDelegated(ctx, kr, old); k != nil {
			reused = true
			break
		}
		k, err = r.newDelegated(ctx, kr.iss)
		if errors.Is(err, core.ErrIssuerRevoked) {
			// A revoked issuer certifies no responder, now or at renewal,
			// and its certificates' status is still asked for: the issuer
			// signs its answers itself (RFC 6960 2.6), from now on.
			r.log.Warn("the issuer is revoked: its OCSP answers are signed with the issuer key itself", "issuer", kr.iss.id)
			k, err = newSigningKey(kr.iss.signer, nil)
		}
	}
	if err != nil {
		return nil, err
	}
	if err := kr.adopt(k, r.now()); err != nil {
		return nil, err
	}
	if k.cert != nil {
		what := "OCSP responder certificate issued"
		if reused {
			what = "OCSP responder certificate reused"
		}
		r.log.Info(what, "issuer", kr.iss.id, "serial", core.SerialFromBig(k.cert.SerialNumber), "not_after", k.cert.NotAfter)
	}
	return k, nil
}

// reuseDelegated returns the recorded responder certificate of iss when
// the KeySource keeps them, it certifies the current responder key, and it
// is neither the one being replaced nor itself due for renewal; nil, nil
// otherwise. Any doubt means a new certificate, never an error.
func (r *Responder) reuseDelegated(ctx context.Context, kr *keyring, old *signingKey) *signingKey {
	iss := kr.iss
	rs, ok := r.keys.(ResponderStore)
	if !ok {
		return nil
	}
	signer, der, err := rs.ReusableResponder(ctx, iss.id)
	if err != nil || der == nil {
		if err != nil {
			r.log.Warn("reading the recorded OCSP responder certificate", "issuer", iss.id, "err", err)
		}
		return nil
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil || checkResponderCert(iss, cert, signer) != nil || (old != nil && old.cert != nil && old.cert.Equal(cert)) ||
		kr.revokedKey(signer.Public()) || kr.signerRevoked(core.SerialFromBig(cert.SerialNumber)) {
		return nil
	}
	k, err := newSigningKey(signer, cert)
	if err != nil || !r.now().Before(k.renewAt) {
		return nil
	}
	return k
}

// checkResponderCert checks that cert is a responder certificate of iss
// for signer's key.
func checkResponderCert(iss *issuer, cert *x509.Certificate, signer crypto.Signer) error {
	if err := cert.CheckSignatureFrom(iss.cert); err != nil {
		return fmt.Errorf("OCSP responder certificate not signed by issuer %s: %w", iss.id, err)
	}
	if len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageOCSPSigning {
		return errors.New("OCSP responder certificate lacks id-kp-OCSPSigning")
	}
	if !publicKeysEqual(cert.PublicKey, signer.Public()) {
		return errors.New("OCSP responder certificate is not for the responder key")
	}
	return nil
}

// newDelegated asks the HSM for the responder key and the issuer for a
// certificate (RFC 6960 §4.2.2.2), and checks what came back.
func (r *Responder) newDelegated(ctx context.Context, iss *issuer) (*signingKey, error) {
	signer, err := r.keys.ResponderKey(ctx, iss.id)
	if err != nil {
		return nil, fmt.Errorf("getting responder key for issuer %s: %w", iss.id, err)
	}
	if iss.kr.revokedKey(signer.Public()) {
		return nil, fmt.Errorf("the OCSP responder key of issuer %s was revoked with its certificate; the key source gave it again", iss.id)
	}
	serial, err := core.NewSerial()
	if err != nil {
		return nil, err
	}
	now := r.now()
	notAfter := now.Add(r.responderValidity)
	if notAfter.After(iss.cert.NotAfter) {
		notAfter = iss.cert.NotAfter
	}
	cn := iss.cert.Subject.CommonName
	if cn == "" {
		cn = iss.id
	}
	tmpl := &x509.Certificate{
		SerialNumber:    serial.Big(),
		Subject:         pkix.Name{CommonName: cn + " OCSP Responder", Organization: iss.cert.Subject.Organization},
		NotBefore:       now.Add(-5 * time.Minute),
		NotAfter:        notAfter,
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning},
		ExtraExtensions: []pkix.Extension{{Id: oidOCSPNoCheck, Value: asn1NULL}},
	}
	der, err := r.certIssuer.SignCertificate(ctx, iss.id, tmpl, signer.Public())
	if err != nil {
		return nil, fmt.Errorf("issuing OCSP responder certificate for issuer %s: %w", iss.id, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing OCSP responder certificate: %w", err)
	}
	if err := checkResponderCert(iss, cert, signer); err != nil {
		return nil, err
	}
	if rs, ok := r.keys.(ResponderStore); ok {
		if err := rs.RecordResponder(ctx, iss.id, der); err != nil {
			r.log.Warn("recording the OCSP responder certificate", "issuer", iss.id, "err", err)
		}
	}
	return newSigningKey(signer, cert)
}

// localIssuer signs responder certificates directly with each issuer's
// crypto.Signer; it is the CertIssuer when Options.CertIssuer is nil.
type localIssuer struct{ issuers map[string]*issuer }

func (l localIssuer) SignCertificate(ctx context.Context, issuerID string, template *x509.Certificate, pub crypto.PublicKey) ([]byte, error) {
	iss := l.issuers[issuerID]
	if iss == nil || iss.signer == nil {
		return nil, fmt.Errorf("no signer for issuer %s", issuerID)
	}
	return x509.CreateCertificate(rand.Reader, template, iss.cert, pub, iss.signer)
}
