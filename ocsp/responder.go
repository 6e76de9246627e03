package ocsp

import (
	"context"
	"crypto"
	_ "crypto/sha1" // CertID hash algorithms
	_ "crypto/sha256"
	_ "crypto/sha512"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage"
)

// StatusSource tells the responder what became of a certificate. It returns
// the record with at least Status, RevokedAt and RevocationReason set, or
// core.ErrNotFound for a serial the issuer never issued (*storage.DB
// implements it).
type StatusSource interface {
	CertStatus(ctx context.Context, issuerID string, serial core.Serial) (core.Certificate, error)
}

// Cache keeps signed responses (storage.MemoryOCSPCache and
// storage.RedisOCSPCache implement it). Delete must stop a Put of the same
// key that started before it from caching a stale answer. An OCSP request
// waits for Get and Put: a shared cache bounds its own waits
// (storage.RedisOCSPCache does), so that a hung one costs a fresh
// signature, not a hung request.
type Cache interface {
	Get(ctx context.Context, key string) ([]byte, bool, error)
	Put(ctx context.Context, key string, val []byte, ttl time.Duration) error
	Delete(ctx context.Context, keys ...string) error
}

// Subscriber delivers events published on a topic (storage.MemoryEvents and
// storage.RedisEvents implement it).
// A nil message means messages may have been lost (storage.RedisEvents after
// its connection broke).
type Subscriber interface {
	Subscribe(ctx context.Context, topic string, fn func(msg []byte)) (stop func(), err error)
}

// Issuer is a CA the responder answers for.
type Issuer struct {
	ID   string // the issuer's name in config, as stored with its certificates
	Cert *x509.Certificate
	// Signer is the issuer's key (in the HSM). It signs responses when
	// Options.SignWithIssuer is set, and responder certificates when
	// Options.CertIssuer is nil; otherwise it may be nil.
	Signer crypto.Signer
}

// Options configures a Responder. Zero values take the documented defaults.
type Options struct {
	Issuers []Issuer
	Status  StatusSource
	// Cache holds signed answers; nil means an in-memory cache of up to
	// 250,000 answers.
	Cache Cache
	// SignWithIssuer makes the issuer key sign responses instead of a
	// delegated responder certificate.
	SignWithIssuer bool
	// Keys provides responder keys; required unless SignWithIssuer.
	Keys KeySource
	// CertIssuer signs responder certificates; nil means with Issuer.Signer.
	CertIssuer CertIssuer
	// Validity is nextUpdate - thisUpdate of each answer; default 24h.
	Validity time.Duration
	// RefreshBefore is how long before nextUpdate a cached answer is
	// replaced by a fresh one; default a quarter of Validity, at most 1h.
	RefreshBefore time.Duration
	// ResponderValidity is the lifetime of a responder certificate; default
	// 30 days. It is renewed when a third of it remains.
	ResponderValidity time.Duration
	// PathPrefix is where the handler is mounted; GET requests carry the
	// base64 request after it. Default "/ocsp".
	PathPrefix string
	// FastEntries is how many GET answers are kept ready to write by
	// request target for the plain listener's fast lane (AppendFast);
	// zero means 65,536, negative keeps none (every GET is answered anew
	// from the Cache or a fresh signature).
	FastEntries int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Log receives errors; nil discards.
	Log *slog.Logger
}

type issuer struct {
	id     string
	cert   *x509.Certificate
	signer crypto.Signer
	kr     keyring
}

// Responder answers OCSP requests; it is an http.Handler.
type Responder struct {
	// failures bounds the log of failures that repeat while the database
	// or the shared cache is down.
	failures          core.FailureLog
	byHash            map[string][]*issuer // hash id + name hash + key hash; several issuers when they share both
	byID              map[string]*issuer
	status            StatusSource
	cache             Cache
	signWithIssuer    bool
	keys              KeySource
	certIssuer        CertIssuer
	validity          time.Duration
	refreshBefore     time.Duration
	responderValidity time.Duration
	prefix            string
	fast              *fastAnswers
	revoked           revokedSet   // serials whose cached "good" is refused (revoked.go)
	pending           pendingDrops // shared cache deletions to retry
	now               func() time.Time
	log               *slog.Logger
	// unanswered counts requests answered with an error status instead of
	// a signed answer, by failureKinds (Unanswered).
	unanswered [len(failureKinds)]atomic.Uint64
}

// Failure kinds of a request the responder could not answer with a signed
// response: the certificate store failed (tryLater), no signing key or
// responder certificate (tryLater), or signing failed (internalError).
const (
	failedStatus = iota
	failedKey
	failedSign
)

var failureKinds = [...]string{failedStatus: "status", failedKey: "key", failedSign: "sign"}

// Unanswered reports, by kind ("status", "key", "sign"), how many requests
// since start got tryLater or internalError because the responder failed:
// a malformed or foreign request is not counted. Clients see OCSP errors
// inside 200 answers, so this is where a broken responder shows.
func (r *Responder) Unanswered() map[string]uint64 {
	out := make(map[string]uint64, len(failureKinds))
	for i, k := range failureKinds {
		out[k] = r.unanswered[i].Load()
	}
	return out
}

// New checks opts and returns a Responder. Responder certificates are
// issued on first use (or by Warm).
func New(opts Options) (*Responder, error) {
	r := &Responder{
		byHash: map[string][]*issuer{}, byID: map[string]*issuer{},
		status: opts.Status, cache: opts.Cache, signWithIssuer: opts.SignWithIssuer,
		keys: opts.Keys, certIssuer: opts.CertIssuer, validity: opts.Validity,
		refreshBefore: opts.RefreshBefore, responderValidity: opts.ResponderValidity,
		prefix: opts.PathPrefix, now: opts.Now, log: opts.Log,
	}
	if r.status == nil {
		return nil, errors.New("ocsp: no status source")
	}
	if len(opts.Issuers) == 0 {
		return nil, errors.New("ocsp: no issuers")
	}
	if r.cache == nil {
		r.cache = storage.NewMemoryOCSPCache(0, 0, nil)
	}
	if r.validity <= 0 {
		r.validity = 24 * time.Hour
	}
	if r.refreshBefore <= 0 {
		r.refreshBefore = min(time.Hour, r.validity/4)
	}
	if r.refreshBefore >= r.validity {
		return nil, errors.New("ocsp: RefreshBefore must be shorter than Validity")
	}
	if r.responderValidity <= 0 {
		r.responderValidity = 30 * 24 * time.Hour
	}
	if r.responderValidity < 3*r.validity {
		return nil, errors.New("ocsp: ResponderValidity must be at least three times Validity")
	}
	if r.prefix == "" {
		r.prefix = "/ocsp"
	}
	switch {
	case opts.FastEntries == 0:
		r.fast = newFastAnswers(defaultFastEntries)
	default:
		r.fast = newFastAnswers(opts.FastEntries) // off when negative
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if !r.signWithIssuer && r.keys == nil {
		return nil, errors.New("ocsp: delegated responder certificates need a KeySource")
	}
	for _, is := range opts.Issuers {
		if is.ID == "" || is.Cert == nil {
			return nil, errors.New("ocsp: issuer without ID or certificate")
		}
		if r.byID[is.ID] != nil {
			return nil, fmt.Errorf("ocsp: issuer %s listed twice", is.ID)
		}
		if is.Signer == nil && (r.signWithIssuer || r.certIssuer == nil) {
			return nil, fmt.Errorf("ocsp: issuer %s has no signer", is.ID)
		}
		iss := &issuer{id: is.ID, cert: is.Cert, signer: is.Signer}
		iss.kr.iss = iss
		r.byID[is.ID] = iss
		keyBits, err := subjectKeyBits(is.Cert)
		if err != nil {
			return nil, fmt.Errorf("ocsp: issuer %s: %w", is.ID, err)
		}
		for _, h := range hashOIDs {
			name, key := h.hash.New(), h.hash.New()
			name.Write(is.Cert.RawSubject)
			key.Write(keyBits)
			k := string(rune(h.hash)) + string(name.Sum(nil)) + string(key.Sum(nil))
			r.byHash[k] = append(r.byHash[k], iss)
		}
	}
	if r.certIssuer == nil {
		r.certIssuer = localIssuer{issuers: r.byID}
	}
	return r, nil
}

func subjectKeyBits(c *x509.Certificate) ([]byte, error) {
	in := cryptobyte.String(c.RawSubjectPublicKeyInfo)
	var seq cryptobyte.String
	var bits []byte
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.SkipASN1(cbasn1.SEQUENCE) || !seq.ReadASN1BitStringAsBytes(&bits) {
		return nil, errors.New("cannot read the certificate's public key")
	}
	return bits, nil
}

// Warm issues the responder certificates now, so a broken HSM or issuer
// shows at start rather than on the first request.
func (r *Responder) Warm(ctx context.Context) error {
	for _, iss := range r.byID {
		if _, err := r.key(ctx, &iss.kr); err != nil {
			return err
		}
	}
	return nil
}

// ResponderCert returns the current delegated responder certificate of an
// issuer (nil when the issuer key signs or none was issued yet).
func (r *Responder) ResponderCert(issuerID string) *x509.Certificate {
	if iss := r.byID[issuerID]; iss != nil {
		if k := iss.kr.cur.Load(); k != nil {
			return k.cert
		}
	}
	return nil
}

func cacheKey(issuerID string, h crypto.Hash, serial core.Serial) string {
	return issuerID + "/" + strconv.Itoa(int(h)) + "/" + string(serial)
}

// Invalidate drops every cached answer for a certificate. It runs on every
// revocation (the revoking node's, each node's event, the sweeper's): when
// the certificate is a responder certificate this responder signed with,
// it is replaced at once (see retire); when it is one that signed cached
// answers this responder met, made by any node, those are no longer
// served (see signers.go).
//
// This node stops serving a cached answer that does not say revoked
// before Invalidate touches the shared cache, and whatever the shared
// cache does (revoked.go). An error means the shared cache did not drop
// its copies within sharedDropTimeout: they are dropped later, by
// RunSweeper.
func (r *Responder) Invalidate(ctx context.Context, issuerID string, serial core.Serial) error {
	return r.dropShared(ctx, r.forget(issuerID, serial))
}

// Subscribe makes the responder drop cached answers when a revocation is
// published on storage.TopicRevoked, until stop is called.
func (r *Responder) Subscribe(ctx context.Context, sub Subscriber) (stop func(), err error) {
	return sub.Subscribe(ctx, storage.TopicRevoked, func(msg []byte) {
		if msg == nil {
			// Revocations may have been missed: forget the answers only
			// this node holds. The shared cache was invalidated by the
			// node that revoked.
			r.fast.dropAll()
			return
		}
		issuerID, serial, err := storage.DecodeRevoked(msg)
		if err != nil {
			r.log.Warn("ignoring bad revocation event", "err", err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), sharedDropTimeout)
		defer cancel()
		if err := r.Invalidate(ctx, issuerID, serial); err != nil && !errors.Is(err, ErrDropQueued) {
			r.log.Warn("dropping cached OCSP responses", "issuer", issuerID, "serial", serial, "err", err)
		}
	})
}
