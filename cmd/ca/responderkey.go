package main

import (
	"cmp"
	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/hsm"
)

// An issuer's OCSP responder key is labelled "ocsp-responder-{issuer}". When
// it is damaged (it fails the HSM's integrity check, hsm.ErrCorrupt) it
// stays in the keystore, refused, until an officer restores or destroys it;
// OCSP must not wait for that. The node makes a fresh key (a damaged one
// opens for nobody, so it cannot be rotated or relabelled, and destroying it
// needs the officer), but the keystore refuses a second key with one label
// (hsm.ErrExists), so the fresh key takes the next generation's label,
// "ocsp-responder-{issuer}.2", then .3 (issuer ids have no dots, so no
// issuer's label reads as another's generation). That refusal is also what
// makes the nodes sharing the keystore agree: of those replacing one damaged
// key at once, one makes the next generation and the others find it. Every
// node uses the newest generation that is intact, so a damaged key an
// operator restores is not used again once a newer one exists, and the
// damaged key keeps showing in `ca hsm status` until the officer deals with
// it.

// replaceEvery bounds how often a node makes a fresh responder key for an
// issuer in place of a damaged one: if fresh keys turn out damaged too,
// the node does not make one per OCSP request.
const replaceEvery = time.Hour

func newResponders(a *app, log *slog.Logger) *responders {
	return &responders{a: a, log: log, signers: map[string]crypto.Signer{}, replaced: map[string]time.Time{}}
}

// responderLabel is the label of generation gen of issuerID's responder key.
func responderLabel(issuerID string, gen int) string {
	if gen <= 1 {
		return "ocsp-responder-" + issuerID
	}
	return "ocsp-responder-" + issuerID + "." + strconv.Itoa(gen)
}

// responderGeneration is the generation label names for issuerID's
// responder key, 0 when it names none.
func responderGeneration(label, issuerID string) int {
	rest, ok := strings.CutPrefix(label, responderLabel(issuerID, 1))
	if !ok {
		return 0
	}
	if rest == "" {
		return 1
	}
	n, err := strconv.Atoi(strings.TrimPrefix(rest, "."))
	if err != nil || n < 2 || rest != "."+strconv.Itoa(n) {
		return 0
	}
	return n
}

// ResponderKey is the signer of a key to certify for issuerID: the
// responder key rotated, or a new one when there is none intact.
func (r *responders) ResponderKey(ctx context.Context, issuerID string) (crypto.Signer, error) {
	sess := r.a.sess
	info, err := findResponderKey(ctx, sess, issuerID)
	switch {
	case err == nil:
		label := info.Label
		if info, err = sess.RotateKey(ctx, info.ID); err != nil {
			return nil, fmt.Errorf("rotating %s: %w", label, err)
		}
	case core.IsNotFound(err):
		if info, err = r.newResponderKey(ctx, issuerID); err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	signer, err := sess.Signer(ctx, info.ID)
	if err != nil {
		return nil, err
	}
	return r.keep(issuerID, signer), nil
}

// keep times signer under the issuer's first label, whatever the
// generation, and remembers it for SignCertificate.
func (r *responders) keep(issuerID string, signer crypto.Signer) crypto.Signer {
	signer = r.a.hsmMetrics.signer(responderLabel(issuerID, 1), signer)
	r.mu.Lock()
	r.signers[issuerID] = signer
	r.mu.Unlock()
	return signer
}

// newResponderKey generates issuerID's responder key when none is intact:
// the first one, or the generation after the damaged ones, which it leaves
// in place for the operator.
func (r *responders) newResponderKey(ctx context.Context, issuerID string) (hsm.KeyInfo, error) {
	sess := r.a.sess
	damaged, err := sess.DamagedKeys(ctx)
	if err != nil {
		return hsm.KeyInfo{}, fmt.Errorf("looking for the OCSP responder key of issuer %s: %w", issuerID, err)
	}
	gen, ids := 1, []string(nil)
	for _, d := range damaged {
		if g := responderGeneration(d.Label, issuerID); g > 0 {
			gen = max(gen, g+1)
			ids = append(ids, d.ID)
		}
	}
	if gen > 1 {
		if err := r.mayReplace(issuerID, ids); err != nil {
			return hsm.KeyInfo{}, err
		}
	}
	label := responderLabel(issuerID, gen)
	info, err := sess.GenerateKey(ctx, hsm.KeySpec{Type: hsm.P256, Label: label, Usage: hsm.UsageSign | hsm.UsageVerify})
	for skipped := 0; errors.Is(err, hsm.ErrExists); skipped++ {
		// Another node made it first: use that one.
		found, ferr := findResponderKey(ctx, sess, issuerID)
		if ferr == nil {
			if gen > 1 {
				r.log.Info("OCSP responder key damaged; using the fresh key another node made", "issuer", issuerID, "damaged", ids, "label", found.Label)
			}
			return found, nil
		}
		if !core.IsNotFound(ferr) || skipped == maxSkippedLabels {
			return hsm.KeyInfo{}, fmt.Errorf("generating %s: %w", label, ferr)
		}
		// No key with the label opens, nor is listed damaged: a row put
		// in the keystore outside the HSM holds it (a review planted
		// one, and OCSP answered tryLater for good). Take the next.
		gen++
		label = responderLabel(issuerID, gen)
		info, err = sess.GenerateKey(ctx, hsm.KeySpec{Type: hsm.P256, Label: label, Usage: hsm.UsageSign | hsm.UsageVerify})
	}
	if err != nil {
		return hsm.KeyInfo{}, fmt.Errorf("generating %s: %w", label, err)
	}
	if gen > 1 {
		r.mu.Lock()
		r.replaced[issuerID] = time.Now()
		r.mu.Unlock()
		r.log.Warn("OCSP responder key damaged (it fails the HSM's integrity check): made a fresh key to certify, "+
			"and left the damaged one for an operator to restore or destroy; look at `ca hsm status`",
			"issuer", issuerID, "damaged", ids, "label", label)
	}
	return info, nil
}

// maxSkippedLabels bounds the generation labels newResponderKey passes
// over because a row it cannot use holds them.
const maxSkippedLabels = 3

// mayReplace refuses a fresh responder key for issuerID within
// replaceEvery of the last one this node made.
func (r *responders) mayReplace(issuerID string, damaged []string) error {
	r.mu.Lock()
	last, ok := r.replaced[issuerID]
	r.mu.Unlock()
	if ok && time.Since(last) < replaceEvery {
		return fmt.Errorf("issuer %s: its OCSP responder keys are all damaged (%s), the fresh one this node made %s ago included; "+
			"it makes no other until %s after that one: look at `ca hsm status`", issuerID, strings.Join(damaged, ", "),
			time.Since(last).Round(time.Second), replaceEvery)
	}
	return nil
}

// findResponderKey returns the responder key of issuerID to use (see
// pickResponderKey); an error of kind not found when none is intact.
func findResponderKey(ctx context.Context, sess *hsm.Session, issuerID string) (hsm.KeyInfo, error) {
	keys, err := sess.ListKeys(ctx)
	if err != nil {
		return hsm.KeyInfo{}, err
	}
	if k, ok := pickResponderKey(keys, sess.User(), issuerID); ok {
		return k, nil
	}
	return hsm.KeyInfo{}, core.Errorf(core.KindNotFound, "no intact OCSP responder key of issuer %s", issuerID)
}

// pickResponderKey chooses among owner's intact responder keys of
// issuerID: the newest generation; within it, every node picks the same
// one of those that nodes generating it at the same time left, before the
// keystore refused a second key with one label: the most rotated (the one
// in use), then the oldest, then the lowest id.
func pickResponderKey(keys []hsm.KeyInfo, owner, issuerID string) (hsm.KeyInfo, bool) {
	keys = slices.DeleteFunc(slices.Clone(keys), func(k hsm.KeyInfo) bool {
		return responderGeneration(k.Label, issuerID) == 0 || k.Owner != owner
	})
	if len(keys) == 0 {
		return hsm.KeyInfo{}, false
	}
	return slices.MinFunc(keys, func(a, b hsm.KeyInfo) int {
		return cmp.Or(cmp.Compare(responderGeneration(b.Label, issuerID), responderGeneration(a.Label, issuerID)),
			cmp.Compare(b.Version, a.Version), a.Created.Compare(b.Created), cmp.Compare(a.ID, b.ID))
	}), true
}
