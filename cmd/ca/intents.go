package main

import (
	"context"
	"encoding/binary"
	"log/slog"
	"time"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage"
)

// intentsSetting holds how far (in time) intents have been reported.
const intentsSetting = "intents_reported_until"

// intentGrace is how old an intent must be to count as left behind: an
// issuance in flight on another node stores its certificate well within it.
const intentGrace = time.Minute

// warnIntents logs, once, the intents recorded since the last report that
// were never stored: a node stopped (a crash, kill -9, power loss) or
// failed between signing and storing, so each certificate may exist
// outside the database, though none was handed out. Reporting moves on
// afterwards, so a start does not repeat what an earlier start said (the
// list stays with `ca cert list --status intent`). A failure to read or
// write the mark is logged and does not stop the node.
func warnIntents(ctx context.Context, db *storage.DB, log *slog.Logger, now time.Time) {
	var after time.Time
	if v, err := db.GetSetting(ctx, intentsSetting); err == nil && len(v) == 8 {
		after = storage.FromMicros(int64(binary.BigEndian.Uint64(v)))
	} else if err != nil && !core.IsNotFound(err) {
		log.Warn("could not read which intents were reported", "err", err)
		return
	}
	until := now.Add(-intentGrace)
	if !until.After(after) {
		return
	}
	n, err := db.CountIntents(ctx, after, until)
	if err != nil {
		log.Warn("could not count intents left by earlier runs", "err", err)
		return
	}
	if n > 0 {
		attrs := []any{"count", n}
		if !after.IsZero() {
			attrs = append(attrs, "since", after)
		}
		log.Warn("certificates were signed, or about to be, and never stored: a node stopped, or its database failed, between recording the intent and storing; none was handed out, but each may exist outside the database (list them with `ca cert list --status intent`)",
			attrs...)
	}
	mark := binary.BigEndian.AppendUint64(nil, uint64(storage.Micros(until)))
	if err := db.PutSetting(ctx, intentsSetting, mark); err != nil {
		log.Warn("could not record which intents were reported", "err", err)
	}
}
