package hsm

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/secretsharing"
)

// Shamir unseal: the master secret is a random Ristretto255 scalar split M of
// N with circl (whose New takes t = M-1: it recovers from t+1 shares). The
// KEK-wrapping key is SHA-256 of the secret. Feldman commitments to the
// polynomial are kept in meta (public: they reveal nothing usable about the
// secret) so a forged or foreign share is named before recovery is tried;
// the GCM tag on the wrapped KEK is the final check value.

const shamirKeyDomain = "strongroom-hsm-shamir-v1"

type shamirParams struct {
	Threshold   int      `json:"threshold"`
	Shares      int      `json:"shares"`
	Commitments []string `json:"commitments"` // hex of compressed group elements
}

// Share text: "srs1-<id>-<64 hex>". The prefix lets a typo be told apart
// from a wrong share.
const sharePrefix = "srs1-"

// CheckShamir validates a threshold of m out of n shares. A threshold of 1
// with several shares is refused: every share would be the whole master
// secret, N copies of it rather than a split. 1 of 1 stays allowed: one
// holder of one secret, which claims no split.
func CheckShamir(m, n int) error {
	if m < 1 || n < m || n > 255 {
		return errf(ErrInvalid, "Shamir needs 1 <= threshold <= shares <= 255 (got %d of %d)", m, n)
	}
	if m == 1 && n > 1 {
		return errf(ErrInvalid, "a Shamir threshold of 1 with %d shares would make every share the whole master secret; use a threshold of at least 2 (or a single share)", n)
	}
	return nil
}

func splitMaster(m, n int) (shamirParams, []string, []byte, error) {
	if err := CheckShamir(m, n); err != nil {
		return shamirParams{}, nil, nil, err
	}
	g := group.Ristretto255
	secret := g.RandomScalar(rand.Reader)
	ss := secretsharing.New(rand.Reader, uint(m-1), secret)
	sp := shamirParams{Threshold: m, Shares: n}
	for _, c := range ss.CommitSecret() {
		b, err := c.MarshalBinaryCompress()
		if err != nil {
			return shamirParams{}, nil, nil, err
		}
		sp.Commitments = append(sp.Commitments, hex.EncodeToString(b))
	}
	var out []string
	for i, s := range ss.Share(uint(n)) {
		v, err := s.Value.MarshalBinary()
		if err != nil {
			return shamirParams{}, nil, nil, err
		}
		out = append(out, fmt.Sprintf("%s%d-%s", sharePrefix, i+1, hex.EncodeToString(v)))
	}
	key, err := masterKey(secret)
	return sp, out, key, err
}

func masterKey(s group.Scalar) ([]byte, error) {
	b, err := s.MarshalBinary()
	if err != nil {
		return nil, err
	}
	defer clear(b)
	h := sha256.Sum256(append([]byte(shamirKeyDomain), b...))
	return h[:], nil
}

func parseShare(text string) (secretsharing.Share, int, error) {
	g := group.Ristretto255
	rest, ok := strings.CutPrefix(strings.TrimSpace(text), sharePrefix)
	idText, valText, ok2 := strings.Cut(rest, "-")
	if !ok || !ok2 {
		return secretsharing.Share{}, 0, fmt.Errorf("not a Strongroom share (want %s<n>-<hex>)", sharePrefix)
	}
	id, err := strconv.Atoi(idText)
	if err != nil || id < 1 || id > 255 {
		return secretsharing.Share{}, 0, fmt.Errorf("share number %q is not 1..255", idText)
	}
	raw, err := hex.DecodeString(valText)
	if err != nil || len(raw) != int(g.Params().ScalarLength) {
		return secretsharing.Share{}, 0, fmt.Errorf("share %d: value is not %d hex bytes", id, g.Params().ScalarLength)
	}
	v := g.NewScalar()
	if err := v.UnmarshalBinary(raw); err != nil {
		return secretsharing.Share{}, 0, fmt.Errorf("share %d: value is not a valid scalar", id)
	}
	return secretsharing.Share{ID: g.NewScalar().SetUint64(uint64(id)), Value: v}, id, nil
}

func recoverMaster(sp shamirParams, texts []string) ([]byte, error) {
	if len(texts) == 0 {
		return nil, errf(ErrInvalid, "%v: this module needs %d of its %d Shamir shares", errNoShares, sp.Threshold, sp.Shares)
	}
	g := group.Ristretto255
	var commit secretsharing.SecretCommitment
	for _, h := range sp.Commitments {
		b, err := hex.DecodeString(h)
		e := g.NewElement()
		if err != nil || e.UnmarshalBinary(b) != nil {
			return nil, errf(ErrCorrupt, "stored Shamir commitments are unreadable")
		}
		commit = append(commit, e)
	}
	if len(commit) != sp.Threshold {
		return nil, errf(ErrCorrupt, "stored Shamir commitments do not match the threshold")
	}
	seen := map[int]bool{}
	var shares []secretsharing.Share
	for i, t := range texts {
		s, id, err := parseShare(t)
		if err != nil {
			return nil, errf(ErrInvalid, "share #%d given: %v", i+1, err)
		}
		if seen[id] {
			return nil, errf(ErrInvalid, "share %d was given twice", id)
		}
		seen[id] = true
		if !secretsharing.Verify(uint(sp.Threshold-1), s, commit) {
			return nil, errf(ErrBadUnseal, "share %d is not a share of this module's master secret (forged, mistyped or from another module)", id)
		}
		shares = append(shares, s)
	}
	if len(shares) < sp.Threshold {
		return nil, errf(ErrBadUnseal, "too few shares: this module needs %d of its %d shares, got %d", sp.Threshold, sp.Shares, len(shares))
	}
	secret, err := secretsharing.Recover(uint(sp.Threshold-1), shares)
	if err != nil {
		return nil, errf(ErrBadUnseal, "recovering master secret: %v", err)
	}
	return masterKey(secret)
}
