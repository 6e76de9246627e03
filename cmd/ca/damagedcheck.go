package main

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strongroom-pki/strongroom/hsm"
)

// damagedCheckEvery is how often a node opens every stored key to find
// the damaged ones (hsm CheckObjects, as `ca hsm status` does), after a
// first check at start. It reads every version and every audit entry
// about a key, so it is not run per scrape; between checks the HSM counts
// the keys it finds damaged in use or in its key sync, which covers every
// key the node serves, so the wait bounds only how long a key nobody uses
// goes uncounted.
const damagedCheckEvery = time.Hour

// watchDamaged checks the keystore for damaged keys at start and every
// damagedCheckEvery until ctx ends, logging a warning when a check finds
// damaged keys other than the last one did. A check that fails (the
// database did not answer, the HSM is sealed) is tried again as the audit
// check is (auditRetryFirst, doubling up to auditRetryMax).
func (a *app) watchDamaged(ctx context.Context) {
	retry := auditRetryFirst
	var last []string
	for {
		wait := damagedCheckEvery
		if ids, ok := a.checkDamaged(ctx, last); ok {
			last, retry = ids, auditRetryFirst
		} else {
			wait, retry = retry, min(2*retry, auditRetryMax)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// checkDamaged checks every stored key once and returns the damaged ones'
// ids, sorted; false when the check could not be made. The ids, not the
// labels, are logged: a row's label is a plain copy anyone who writes the
// database can change, and an application's labels are its own business.
func (a *app) checkDamaged(ctx context.Context, last []string) ([]string, bool) {
	damaged, err := a.n.hsm.CheckObjects(ctx)
	if err != nil {
		if ctx.Err() == nil && !errors.Is(err, hsm.ErrSealed) {
			a.n.log.Warn("hsm: checking the keystore for damaged keys (tried again later)", "err", err)
		}
		return nil, false
	}
	ids := make([]string, 0, len(damaged))
	for _, d := range damaged {
		ids = append(ids, d.ID)
	}
	slices.Sort(ids)
	if len(ids) > 0 && !slices.Equal(ids, last) {
		a.n.log.Warn("hsm: damaged keys in the keystore (they fail the HSM's integrity check and are refused): restore them from a backup or destroy them; see `ca hsm status`",
			"count", len(ids), "keys", ids)
	}
	return ids, true
}

// damagedGauge is the number of damaged keys the HSM knows of: what its
// last whole check found, with the keys found damaged in use since (and
// those destroyed or intact again taken out); -1 before the first check
// while none was found. Reading it reads no storage.
func (a *app) damagedGauge() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "strongroom_hsm_damaged_keys",
		Help: "Keys in the HSM keystore that fail its integrity check (refused until restored or destroyed; ca hsm status lists them): the node's last check of every key (at start, then hourly) and keys found damaged in use since; -1 before the first check.",
	}, func() float64 { return float64(a.n.hsm.DamagedCount()) })
}
