package crl

import "time"

// numberFloor is the least CRL number a CRL built at the instant at may
// take: at in Unix nanoseconds, as Boulder numbers its CRLs by thisUpdate.
// The Store hands out the larger of its last number plus one and this
// floor, so numbers keep increasing (RFC 5280 §5.2.3: per issuer and scope,
// a sequence the full and delta CRLs share) even when the database's own
// sequence goes back: a database restored from an older backup, or an
// empty one after a restore of the HSM alone. at has the clock's full
// resolution, not the whole seconds of thisUpdate: taking a number needs a
// database round trip, so the sequence never runs ahead of the clock, and
// any number published before a restore is below the floor of every later
// instant, however soon the node starts again. That holds as long as the
// clock of the node building after the restore has passed the instant of
// the last CRL published before it (node clocks must agree well within the
// time a restore takes).
//
// A floor from a clock set wrong far ahead stays in the sequence (numbers
// cannot go back), which is harmless. An int64 (8 octets, within §5.2.3's
// 20) holds Unix nanoseconds until the year 2262. Numbers from before this
// scheme (1, 2, 3…) are far below any floor, so the first CRL after an
// upgrade is numbered above them all.
func numberFloor(at time.Time) int64 {
	return at.UnixNano()
}
