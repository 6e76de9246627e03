package core

import (
	"errors"
	"fmt"
)

// Kind says what class of failure an Error is, so that front ends can choose a
// status code and problem type without looking at the message.
type Kind int

const (
	// KindInternal is a failure that is not the caller's fault. Its detail is
	// never shown to a client.
	KindInternal Kind = iota
	// KindMalformed is input that cannot be parsed (bad JSON, garbage DER).
	KindMalformed
	// KindBadCSR is a CSR that parses but cannot be used (bad signature, names
	// that do not match).
	KindBadCSR
	// KindBadKey is a public key of a type or size policy does not accept.
	KindBadKey
	// KindRejected is a request policy refuses (a name outside the allowed
	// suffixes, an over-long lifetime, an unknown profile).
	KindRejected
	// KindUnauthenticated means no valid credential was presented.
	KindUnauthenticated
	// KindForbidden means the credential is valid but may not do this.
	KindForbidden
	// KindNotFound means the object does not exist or is not visible.
	KindNotFound
	// KindConflict means the object's state does not allow the operation.
	KindConflict
	// KindRateLimited means a configured limit was reached.
	KindRateLimited
	// KindUnavailable means the service cannot act now (HSM sealed, database
	// down); retrying later may succeed.
	KindUnavailable
)

var kindNames = [...]string{"internal", "malformed", "badCSR", "badKey", "rejected",
	"unauthenticated", "forbidden", "notFound", "conflict", "rateLimited", "unavailable"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Error is a failure with a Kind. Detail is safe to show to the client that
// caused it; Err (if any) is the internal cause, for logs only.
type Error struct {
	Kind   Kind
	Detail string
	Err    error
	// is is the sentinel an Error made by Because stands for.
	is *Error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Detail + ": " + e.Err.Error()
	}
	return e.Detail
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(Because(sentinel, ...), sentinel) hold.
func (e *Error) Is(target error) bool { return e.is != nil && e.is == target }

// Because is sentinel with the reason it happened, as one client-safe
// detail ("reason: sentinel's detail") of the sentinel's kind; errors.Is
// still matches the sentinel. For packages whose errors are sentinels and
// whose reasons are written for the caller (hsm): a wrapped sentinel
// (fmt.Errorf("...: %w")) would show clients only the sentinel's detail.
func Because(sentinel *Error, reason string) *Error {
	return &Error{Kind: sentinel.Kind, Detail: reason + ": " + sentinel.Detail, is: sentinel}
}

// Restate is sentinel told in a detail of its own, for a reason that
// already says all the sentinel's detail would add: Because would append
// it ("…; destroy it first: object already exists"). errors.Is still
// matches the sentinel.
func Restate(sentinel *Error, detail string) *Error {
	return &Error{Kind: sentinel.Kind, Detail: detail, is: sentinel}
}

// Errorf makes an Error of kind k with a formatted client-safe detail.
func Errorf(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Detail: fmt.Sprintf(format, args...)}
}

// Wrap makes an Error of kind k whose detail is shown to clients and whose
// cause err is kept for logs.
func Wrap(k Kind, err error, detail string) *Error {
	return &Error{Kind: k, Detail: detail, Err: err}
}

// KindOf returns the Kind of the first core.Error in err's chain, or
// KindInternal if there is none.
func KindOf(err error) Kind {
	var ce *Error
	if errors.As(err, &ce) {
		return ce.Kind
	}
	return KindInternal
}

// DetailOf returns the client-safe detail of err: a core.Error's Detail, or a
// generic message for anything else so internal detail never leaks.
func DetailOf(err error) string {
	var ce *Error
	if errors.As(err, &ce) && ce.Kind != KindInternal {
		return ce.Detail
	}
	return "internal error"
}

// ErrIssuerRevoked is wrapped by the refusal of an issuer whose own
// certificate is revoked: it certifies nothing more (a delegated OCSP
// responder included). The CA's state, not the request, is at fault, so
// it is KindUnavailable (503), never a client-fault kind: an ACME client
// told badCSR would give up or change a CSR that was fine.
var ErrIssuerRevoked = &Error{Kind: KindUnavailable,
	Detail: "it issues nothing more; name another issuer, or none (the CA chooses a usable one)"}

// ErrNoIssuer refuses a request that names no issuer when no configured
// issuer that could sign it is usable (each is revoked or expired).
var ErrNoIssuer = &Error{Kind: KindUnavailable,
	Detail: "no issuer can sign new certificates now: every intermediate that could is revoked or expired; the CA's operators must add one"}

// ErrNotFound is returned by repositories when a row does not exist.
var ErrNotFound = &Error{Kind: KindNotFound, Detail: "not found"}

// IsNotFound reports whether err is or wraps a not-found Error.
func IsNotFound(err error) bool { return KindOf(err) == KindNotFound }
