package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/ra"
	"github.com/strongroom-pki/strongroom/storage"
)

// Scopes an API key or client certificate can hold.
const (
	ScopeIssue  = "issue"  // POST /certificates, /certificates/dry-run
	ScopeRevoke = "revoke" // POST /certificates/{serial}/revoke
	ScopeRead   = "read"   // GET /certificates…, /issuers
	ScopeAdmin  = "admin"  // everything
	ScopeKeys   = "keys"   // the key service: /keys…, /hash, /random
	// ScopeMetrics reads /metrics and nothing else: what a Prometheus
	// scraping the node holds.
	ScopeMetrics = "metrics"
)

var allScopes = []string{ScopeIssue, ScopeRevoke, ScopeRead, ScopeAdmin, ScopeKeys, ScopeMetrics}

// keyPrefix marks Strongroom API keys so secret scanners can find leaked
// ones.
const keyPrefix = "srk_"

// KeyStore keeps API keys (*storage.DB implements it).
type KeyStore interface {
	CreateAPIKey(ctx context.Context, k *storage.APIKey) error
	RevokeAPIKey(ctx context.Context, id string, at time.Time) error
	APIKeys(ctx context.Context) ([]storage.APIKey, error)
}

// KeyInfo describes a key without its secret or hash.
type KeyInfo struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	Scopes     []string  `json:"scopes"`
	Names      []string  `json:"names,omitempty"`    // name limits (DNS suffixes, IP prefixes, URI prefixes, @email domains)
	Profiles   []string  `json:"profiles,omitempty"` // profile limits
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at,omitzero"`
	RevokedAt  time.Time `json:"revoked_at,omitzero"`
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
}

// KeySpec describes a key to create.
type KeySpec struct {
	Name   string
	Scopes []string // issue, revoke, read, admin, keys, metrics
	// Names and Profiles limit what the key may ask for, inside the
	// policy (ra.Limits): DNS suffixes, IP prefixes, URI prefixes and
	// @email domains; profile names.
	Names, Profiles []string
	// KnownProfiles, if set, are the CA's profiles: Profiles must name
	// only these (a misspelt one would leave the key unable to issue).
	KnownProfiles []string
	// TTL, if positive, is how long the key works. Zero: until revoked.
	TTL time.Duration
}

// ParseKeyExpiry reads how long a new API key works ("90d", "720h"), as
// given in what (a flag or form field). Zero is refused: the key would
// expire at once; an empty setting, not zero, means until revoked.
func ParseKeyExpiry(what, s string) (time.Duration, error) {
	d, err := ParseDuration(what, s)
	if err == nil && d == 0 {
		err = core.Errorf(core.KindMalformed, "%s %s: the key would expire at once; leave it out for a key that works until revoked", what, s)
	}
	return d, err
}

// CreateKey makes a new API key with scopes (issue, revoke, read, admin, keys, metrics)
// and returns its secret — shown this once, never stored — and its id.
func CreateKey(ctx context.Context, store KeyStore, name string, scopes []string) (secret string, id string, err error) {
	return CreateKeyWith(ctx, store, KeySpec{Name: name, Scopes: scopes})
}

// CreateKeyWith is CreateKey with limits.
func CreateKeyWith(ctx context.Context, store KeyStore, spec KeySpec) (secret string, id string, err error) {
	name, scopes := spec.Name, spec.Scopes
	lim, err := ra.ParseLimits(spec.Names, spec.Profiles)
	if err != nil {
		return "", "", err
	}
	if lim != nil && spec.KnownProfiles != nil {
		for _, p := range lim.Profiles {
			if !slices.Contains(spec.KnownProfiles, p) {
				return "", "", core.Errorf(core.KindMalformed, "unknown profile %q (profiles: %s)", p, strings.Join(spec.KnownProfiles, ", "))
			}
		}
	}
	if err := checkKeyName(name); err != nil {
		return "", "", err
	}
	if len(scopes) == 0 {
		return "", "", core.Errorf(core.KindMalformed, "an API key needs at least one scope (%s)", strings.Join(allScopes, ", "))
	}
	for _, s := range scopes {
		if !slices.Contains(allScopes, s) {
			return "", "", core.Errorf(core.KindMalformed, "unknown scope %q (want %s)", s, strings.Join(allScopes, ", "))
		}
	}
	idb := make([]byte, 8)
	sb := make([]byte, 32)
	if _, err := rand.Read(idb); err != nil {
		return "", "", fmt.Errorf("making API key id: %w", err)
	}
	if _, err := rand.Read(sb); err != nil {
		return "", "", fmt.Errorf("making API key: %w", err)
	}
	id = hex.EncodeToString(idb)
	secret = keyPrefix + base64.RawURLEncoding.EncodeToString(sb)
	k := &storage.APIKey{ID: id, Name: name, Hash: hashKey(secret), Scopes: slices.Clone(scopes), CreatedAt: time.Now().UTC()}
	if lim != nil {
		k.Names, k.Profiles = lim.Names(), slices.Clone(lim.Profiles)
	}
	if spec.TTL < 0 {
		return "", "", core.Errorf(core.KindMalformed, "an API key's lifetime must be positive")
	}
	if spec.TTL > 0 {
		k.ExpiresAt = k.CreatedAt.Add(spec.TTL)
	}
	if err := store.CreateAPIKey(ctx, k); err != nil {
		return "", "", fmt.Errorf("storing API key: %w", err)
	}
	return secret, id, nil
}

// maxKeyNameLen bounds an API key's name: it labels the key in listings.
const maxKeyNameLen = 100

// checkKeyName accepts 1 to maxKeyNameLen characters of UTF-8 text without
// control or formatting characters: the name is shown in the console, in `ca apikey
// list` and in logs.
func checkKeyName(name string) error {
	switch {
	case strings.TrimSpace(name) == "":
		return core.Errorf(core.KindMalformed, "an API key needs a name")
	case !utf8.ValidString(name):
		return core.Errorf(core.KindMalformed, "an API key's name must be UTF-8 text")
	case utf8.RuneCountInString(name) > maxKeyNameLen:
		return core.Errorf(core.KindMalformed, "an API key's name must be at most %d characters", maxKeyNameLen)
	case strings.ContainsFunc(name, core.Invisible):
		// Cf: invisible formatting, such as bidirectional overrides that
		// make a listing show another name than the one stored.
		return core.Errorf(core.KindMalformed, "an API key's name must not contain control or invisible formatting characters")
	}
	return nil
}

// KeyIDOf is the id of the key an operator names by ref: its id, or its
// secret (a key found leaked in a log or a repository is revoked by what
// was found). A secret is only hashed, never repeated in an error.
func KeyIDOf(ctx context.Context, store interface {
	APIKeyByHash(context.Context, []byte) (*storage.APIKey, error)
}, ref string) (string, error) {
	// A secret as found: perhaps with spaces around it, or after "Bearer "
	// (found by a review: such a secret was taken for an id and repeated
	// in "no API key has id").
	i := strings.Index(ref, keyPrefix)
	if i < 0 {
		if !isKeyID(ref) {
			return "", core.Errorf(core.KindMalformed, "not an API key id (16 hex digits, as `ca apikey list` shows) or secret (%s…)", keyPrefix)
		}
		return ref, nil
	}
	secret := strings.TrimSpace(ref[i:])
	k, err := store.APIKeyByHash(ctx, hashKey(secret))
	if errors.Is(err, core.ErrNotFound) {
		return "", core.Errorf(core.KindNotFound, "no API key has the secret given (%s…)", keyPrefix)
	}
	if err != nil {
		return "", err
	}
	return k.ID, nil
}

// quotedRef is s quoted for an error, unless it holds an API key's secret
// (pasted into a URL by mistake), which is not repeated.
func quotedRef(s string) string {
	if strings.Contains(s, keyPrefix) {
		return "(an API key's secret: not repeated)"
	}
	return strconv.Quote(s)
}

// isKeyID reports whether s has the form of a key id: 16 lowercase hex
// digits (CreateKeyWith).
func isKeyID(s string) bool {
	if len(s) != 16 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// RevokeKey revokes the key with id; it stops working at once.
func RevokeKey(ctx context.Context, store KeyStore, id string) error {
	return store.RevokeAPIKey(ctx, id, time.Now().UTC())
}

// ListKeys lists every key (no secrets: they are not stored).
func ListKeys(ctx context.Context, store KeyStore) ([]KeyInfo, error) {
	keys, err := store.APIKeys(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]KeyInfo, len(keys))
	for i, k := range keys {
		out[i] = KeyInfo{ID: k.ID, Name: k.Name, Scopes: k.Scopes, Names: k.Names, Profiles: k.Profiles,
			CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt, RevokedAt: k.RevokedAt, LastUsedAt: k.LastUsedAt}
	}
	return out, nil
}

// hashKey is what is stored: SHA-256 of the secret. The secret has 256
// bits of entropy, so a fast hash is enough (no dictionary to attack).
func hashKey(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}
