package main

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strongroom-pki/strongroom/hsm"
)

// auditCheckEvery is how often a node checks the HSM audit log's whole
// chain (hashes, MACs, no entry missing), after a first check at start. The
// HSM checks each key against the entries about it when it opens the key;
// an entry deleted or moved to another object shows only in the chain.
const auditCheckEvery = 24 * time.Hour

// auditState is the last check's verdict: auditUnknown until the first.
type auditState int32

const (
	auditUnknown auditState = iota
	auditIntact
	auditAltered
)

// watchAudit checks the audit chain at start and every auditCheckEvery
// until ctx ends, logging an alteration as an error once per change.
// A check that fails (the database did not answer) is tried again after
// auditRetryFirst, doubling up to auditRetryMax: waiting a day would leave
// strongroom_hsm_audit_intact unknown that long (a CI run under load saw
// the first check at start fail).
func (a *app) watchAudit(ctx context.Context) {
	retry := auditRetryFirst
	for {
		wait := auditCheckEvery
		if !a.checkAudit(ctx) {
			wait, retry = retry, min(2*retry, auditRetryMax)
		} else {
			retry = auditRetryFirst
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

const (
	auditRetryFirst = 5 * time.Second
	auditRetryMax   = 10 * time.Minute
)

// checkAudit checks the chain once; false when the check could not be
// made.
func (a *app) checkAudit(ctx context.Context) bool {
	rep, err := a.n.hsm.VerifyAudit(ctx)
	if err != nil {
		if ctx.Err() == nil {
			a.n.log.Warn("hsm: checking the audit log (tried again later)", "err", err)
		}
		return false
	}
	next := auditIntact
	if rep.FirstBad != 0 {
		next = auditAltered
	}
	prev := auditState(a.auditVerdict.Swap(int32(next)))
	switch {
	case next == auditAltered && prev != auditAltered:
		a.n.log.Error("hsm: the audit log was altered outside the HSM: the keys' histories it records cannot be trusted; see `ca hsm audit verify`",
			"first_bad", rep.FirstBad, "problem", rep.Problem)
	case next == auditIntact && prev == auditAltered:
		a.n.log.Info("hsm: the audit log verifies again", "entries", rep.Entries)
	}
	a.auditUnauth.Store(unauthenticated(rep))
	// Failed unseals and self-tests are appended while sealed, when no MAC
	// can be made: an operator's mistyped share is not a warning (a review
	// saw one send operators looking for nodes of an older release).
	sealed, other := rep.UnauthBySource()
	if was := a.auditUnauthOther.Swap(int64(other)); int64(other) > max(was, 0) {
		a.n.log.Warn("hsm: audit entries without a MAC after authentication began: appended by nodes of the previous release during an upgrade, or written or stripped outside the HSM; once every node runs this release their number must not grow (see `ca hsm audit verify`)",
			"unauthenticated", other, "before", max(was, 0))
	}
	if was := a.auditUnauthSealed.Swap(int64(sealed)); int64(sealed) > max(was, 0) {
		a.n.log.Info("hsm: failed unseals or self-tests recorded while sealed, when no MAC can be made (listed by `ca hsm audit verify`)",
			"entries", sealed, "before", max(was, 0))
	}
	return true
}

// unauthenticated counts the entries without a MAC after the log's
// authentication began.
func unauthenticated(rep hsm.AuditReport) int64 {
	var n int64
	for _, c := range rep.Unauthenticated {
		n += int64(c)
	}
	return n
}

// auditUnauthGauge is the number of audit entries the last check found
// without a MAC after authentication began (-1 before the first check):
// legitimate only from nodes of the previous release during a rolling
// upgrade, so an increase afterwards means entries were written, or their
// MACs stripped, outside the HSM. The HSM does not refuse a key for such
// an entry about it (keyhistory.go), so this is where it shows.
func (a *app) auditUnauthGauge() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "strongroom_hsm_audit_unauthenticated_entries",
		Help: "Audit entries without a MAC after the log's authentication began, at the last check (at start, then daily); -1 before the first. Alert when it grows after an upgrade has finished.",
	}, func() float64 { return float64(a.auditUnauth.Load()) })
}

// auditGauge is 1 while the last check found the audit log intact, 0 when
// it found it altered, -1 before the first check.
func (a *app) auditGauge() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "strongroom_hsm_audit_intact",
		Help: "1 while the last check of the HSM audit log's chain (at start, then daily) found it intact, 0 when it found it altered outside the HSM, -1 before the first check.",
	}, func() float64 {
		switch auditState(a.auditVerdict.Load()) {
		case auditIntact:
			return 1
		case auditAltered:
			return 0
		}
		return -1
	})
}
