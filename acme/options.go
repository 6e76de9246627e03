package acme

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage"
)

// Identifier is an ACME identifier: type "dns" (RFC 8555 §9.7.7) or "ip"
// (RFC 8738). A wildcard order identifier keeps its "*." prefix.
type Identifier struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// Store is the persistence acme needs; *storage.DB implements it.
type Store interface {
	CreateACMEAccount(ctx context.Context, a *storage.ACMEAccount) error
	ACMEAccount(ctx context.Context, endpoint, id string) (*storage.ACMEAccount, error)
	ACMEAccountByThumbprint(ctx context.Context, endpoint, thumbprint string) (*storage.ACMEAccount, error)
	UpdateACMEAccount(ctx context.Context, endpoint, id, status string, contact []string) error
	ChangeACMEAccountKey(ctx context.Context, endpoint, id, oldThumb, newThumb string, jwk []byte) (string, error)
	ACMEEABKey(ctx context.Context, kid string) (*storage.ACMEEABKey, error)
	// KeyBlocked reports whether a key (core.KeyHash of its SPKI) is
	// blocked: it opens no account.
	KeyBlocked(ctx context.Context, keyHash []byte) (bool, error)

	CreateACMEOrder(ctx context.Context, o *storage.ACMEOrder) error
	ACMEOrder(ctx context.Context, endpoint, id string) (*storage.ACMEOrder, error)
	ACMEOrderIDs(ctx context.Context, endpoint, accountID, cursor string, now time.Time, limit int) ([]string, error)
	SetACMEOrderStatus(ctx context.Context, endpoint, id, from, to string, problem []byte) (bool, error)
	FinishACMEOrder(ctx context.Context, c *storage.ACMECert) error
	ACMECert(ctx context.Context, endpoint, serial string) (*storage.ACMECert, error)
	ACMEOrderReplacing(ctx context.Context, endpoint, certID string) (bool, error)

	ACMEAuthz(ctx context.Context, endpoint, id string) (*storage.ACMEAuthz, error)
	ACMEAuthzByChallenge(ctx context.Context, endpoint, challengeID string) (*storage.ACMEAuthz, error)
	DeactivateACMEAuthz(ctx context.Context, endpoint, id, from string) (bool, error)
	SettleACMEChallenge(ctx context.Context, endpoint, authzID, challengeID, from, to string, validated time.Time, problem []byte) (bool, error)
	ValidACMEIdentifiers(ctx context.Context, endpoint, accountID string, now time.Time) ([]storage.ACMEIdentifier, error)
	ReusableACMEAuthz(ctx context.Context, endpoint, accountID string, id storage.ACMEIdentifier, wildcard bool, validAfter time.Time) (*storage.ACMEAuthz, error)

	// Taking over work a stopped node left processing (see recover.go).
	StartACMEChallenge(ctx context.Context, id string, at time.Time) (bool, error)
	ReleaseACMEChallenge(ctx context.Context, id string) (bool, error)
	StaleACMEChallenges(ctx context.Context, endpoint string, cutoff time.Time, limit int) ([]storage.StaleACMEWork, error)
	ClaimACMEChallenge(ctx context.Context, id string, since, at time.Time) (bool, error)
	StartACMEFinalize(ctx context.Context, endpoint, id string, at time.Time) (bool, error)
	StaleACMEOrders(ctx context.Context, endpoint string, cutoff time.Time, limit int) ([]storage.StaleACMEWork, error)
	AbandonACMEOrder(ctx context.Context, endpoint, id string, since time.Time, problem []byte) (bool, error)
}

// Nonces issues and redeems Replay-Nonce values (storage.MemoryNonces,
// storage.RedisNonces).
type Nonces interface {
	Issue(ctx context.Context) (string, error)
	Redeem(ctx context.Context, nonce string) (bool, error)
}

// RateLimiter counts one event for key and says whether it is within limit
// per window, and if not how long to wait; Refund takes one back
// (storage.MemoryLimiter, storage.RedisLimiter).
type RateLimiter interface {
	Allow(ctx context.Context, key string, limit int, window time.Duration) (bool, time.Duration, error)
	Refund(ctx context.Context, key string, window time.Duration) error
}

// Issued is what an Issuer hands back: the serial and one or more chains,
// each leaf first, DER. Chains[0] is served by default, the others as
// alternates (Link rel="alternate").
type Issued struct {
	Serial core.Serial
	Chains [][][]byte
}

// Issuer issues and revokes certificates (ra/ca in production). requester
// is "acme:<endpoint>/<account id>". Errors are core.Errors: KindBadCSR,
// KindBadKey and KindRejected are the client's fault.
type Issuer interface {
	Issue(ctx context.Context, csr *x509.CertificateRequest, profile, requester string) (*Issued, error)
	// Revoke revokes serial. keyHolder says the request was signed by the
	// certificate's own key: only then does keyCompromise block the key
	// (and revoke its other certificates), as Boulder does.
	Revoke(ctx context.Context, serial core.Serial, reason core.RevocationReason, requester string, keyHolder bool) error
	// Certificate returns the stored record of any certificate the CA
	// issued (core.ErrNotFound otherwise), for revokeCert and ARI.
	Certificate(ctx context.Context, serial core.Serial) (*core.Certificate, error)
}

// Policy says which identifiers an endpoint may issue for under a CA
// profile, and which certificate keys. An identifier refusal should wrap
// one *IdentifierError per refused identifier (errors.Join), so clients get
// subproblems (RFC 8555 §6.7.1). A key refusal is a KindBadKey core.Error;
// finalize asks before it commits the order to issuance, so the order
// stays ready for a CSR with another key.
type Policy interface {
	CheckIdentifiers(ctx context.Context, endpoint string, ids []Identifier, profile string) error
	CheckKey(ctx context.Context, pub crypto.PublicKey, profile string) error
}

// IdentifierError is a refusal of one identifier.
type IdentifierError struct {
	Identifier Identifier
	Detail     string
}

func (e *IdentifierError) Error() string {
	return fmt.Sprintf("%s %s: %s", e.Identifier.Type, e.Identifier.Value, e.Detail)
}

// EAB checks external account binding MACs (RFC 8555 §7.3.4). The HMAC keys
// are in the HSM; VerifyMAC returns an error when mac is not HMAC-SHA256 of
// signingInput under the key kid.
type EAB interface {
	VerifyMAC(ctx context.Context, kid string, signingInput, mac []byte) error
}

// Validator checks one challenge response on the wire (acme/challenge).
// An error that has a ProblemType() string method (for example "connection",
// "dns", "incorrectResponse", "tls", "unauthorized") sets the problem type;
// its message is shown to the client.
type Validator interface {
	Validate(ctx context.Context, chType string, id Identifier, token, keyAuthorization string) error
}

// Clock tells the time.
type Clock interface{ Now() time.Time }

// Profile is an ACME profile offered in the directory.
type Profile struct {
	Description string
	CAProfile   string // the CA profile name the Issuer is asked for
}

// Meta is the directory's meta object (RFC 8555 §7.1.1).
type Meta struct {
	TermsOfService          string
	Website                 string
	CAAIdentities           []string
	ExternalAccountRequired bool
}

// Limits are the endpoint's rate limits; 0 means unlimited.
type Limits struct {
	NewOrdersPerAccountPerHour int
	NewAccountsPerIPPerHour    int
}

// Options configure one endpoint. Every field without a stated default is
// required.
type Options struct {
	Name    string // endpoint name, e.g. "default"
	BaseURL string // external URL of the endpoint, e.g. https://localhost:8443/acme/default

	Store       Store
	Nonces      Nonces
	RateLimiter RateLimiter // nil: no rate limits
	Limits      Limits
	Issuer      Issuer
	Policy      Policy // nil: acme's own syntax checks only
	EAB         EAB    // required if Meta.ExternalAccountRequired
	Validator   Validator

	Profiles       map[string]Profile // nil: no profiles extension; orders use DefaultProfile
	DefaultProfile string             // the CA profile used when an order names none
	Meta           Meta

	OrderLifetime time.Duration // lifetime of an order and of its authorizations, also once valid; 0: 7 days
	// AuthzReuse is how recent an account's proof of control over an
	// identifier may be for a new order to reuse it (RFC 8555 §7.4 lets a
	// server do so): the order then starts with that authorization valid
	// and needs no challenge. 0: 24 hours; negative: never reuse.
	AuthzReuse        time.Duration
	ValidationTimeout time.Duration // per challenge attempt; 0: 30 s
	// ValidationWait is how long a challenge POST waits for its validation
	// to finish and answers with the result; a validation still running
	// then is answered "processing" with Retry-After. 0: 3 s; negative:
	// answer at once.
	ValidationWait time.Duration
	MaxBodyBytes   int64 // JWS body limit; 0: 64 KiB
	// RecoverEvery is how often the endpoint looks for challenges and
	// orders a stopped node left processing (recover.go); it also looks at
	// start. 0: 30 s; negative: never by itself (tests call Recover).
	RecoverEvery time.Duration

	Clock  Clock        // nil: the system clock
	Logger *slog.Logger // nil: discard
}

// Server is one ACME endpoint. It is an http.Handler.
type Server struct {
	// failures logs requests failed on our side (503s bounded).
	failures core.FailureLog
	o        Options
	base     *url.URL
	log      *slog.Logger
	bg       context.Context // parent of asynchronous validations
	stop     context.CancelFunc
	wg       sync.WaitGroup
	validate *slots // bounds concurrent validations, fairly among accounts
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// New checks the options and returns the endpoint's server.
func New(o Options) (*Server, error) {
	var errs []error
	if o.Name == "" {
		errs = append(errs, errors.New("Name is empty"))
	}
	base, err := url.Parse(strings.TrimSuffix(o.BaseURL, "/"))
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" {
		errs = append(errs, fmt.Errorf("BaseURL %q is not an absolute http(s) URL", o.BaseURL))
	}
	for name, v := range map[string]any{"Store": o.Store, "Nonces": o.Nonces, "Issuer": o.Issuer, "Validator": o.Validator} {
		if v == nil {
			errs = append(errs, fmt.Errorf("%s is nil", name))
		}
	}
	if o.Meta.ExternalAccountRequired && o.EAB == nil {
		errs = append(errs, errors.New("external account binding is required but EAB is nil"))
	}
	if len(o.Profiles) > 0 {
		if _, ok := o.Profiles[o.DefaultProfile]; !ok {
			errs = append(errs, fmt.Errorf("DefaultProfile %q is not among Profiles", o.DefaultProfile))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("acme endpoint %q: %w", o.Name, errors.Join(errs...))
	}
	if o.OrderLifetime <= 0 {
		o.OrderLifetime = 7 * 24 * time.Hour
	}
	if o.ValidationTimeout <= 0 {
		o.ValidationTimeout = 30 * time.Second
	}
	if o.ValidationWait == 0 {
		o.ValidationWait = 3 * time.Second
	}
	if o.AuthzReuse == 0 {
		o.AuthzReuse = 24 * time.Hour
	}
	if o.RecoverEvery == 0 {
		o.RecoverEvery = 30 * time.Second
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 64 << 10
	}
	if o.Clock == nil {
		o.Clock = systemClock{}
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	bg, stop := context.WithCancel(context.Background())
	s := &Server{o: o, base: base, log: log.With("acme_endpoint", o.Name), bg: bg, stop: stop,
		validate: newSlots(validationSlots, slotsPerAccount)}
	if o.RecoverEvery > 0 {
		s.wg.Add(1)
		go s.recoverLoop()
	}
	return s, nil
}

// Close stops validations in flight and waits for them to finish.
func (s *Server) Close() error {
	s.stop()
	s.wg.Wait()
	return nil
}

func (s *Server) now() time.Time { return s.o.Clock.Now().UTC() }

// url builds an absolute URL under the endpoint.
func (s *Server) url(parts ...string) string {
	return s.base.String() + "/" + strings.Join(parts, "/")
}

// ValidatorFunc adapts a validation function that takes the identifier's
// type and value apart — such as (*challenge.Validator).Validate — to
// Validator: acme.ValidatorFunc(v.Validate).
type ValidatorFunc func(ctx context.Context, chType, identType, identValue, token, keyAuthorization string) error

// Validate calls f.
func (f ValidatorFunc) Validate(ctx context.Context, chType string, id Identifier, token, keyAuthorization string) error {
	return f(ctx, chType, id.Type, id.Value, token, keyAuthorization)
}
