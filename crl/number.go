package crl

import "time"

// numberFloor is the least CRL number a CRL whose thisUpdate is thisUpdate
// may take: thisUpdate in Unix nanoseconds, as Boulder numbers its CRLs.
// The Store hands out the larger of its last number plus one and this
// floor, so numbers keep increasing (RFC 5280 §5.2.3: per issuer and scope,
// shared by the full and delta CRLs) even when the database's own sequence
// goes back: a database restored from an older backup, or an empty one
// after a restore of the HSM alone. thisUpdate has whole seconds, so the
// floor rises by 10^9 a second while the sequence runs ahead of it only by
// the few CRLs built within one second; any number published before the
// restore is therefore below the floor of every later second. That holds
// as long as the clock of the node building after the restore has passed
// the second of the last CRL published before it (node clocks must agree
// well within the time a restore takes).
//
// A floor from a clock set wrong far ahead stays in the sequence (numbers
// cannot go back), which is harmless. An int64 (8 octets, within §5.2.3's
// 20) holds Unix nanoseconds until the year 2262. Numbers from before this
// scheme (1, 2, 3…) are far below any floor, so the first CRL after an
// upgrade is numbered above them all.
func numberFloor(thisUpdate time.Time) int64 {
	return thisUpdate.UnixNano()
}
