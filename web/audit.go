package web

import (
	"context"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/hsm"
	"github.com/strongroom-pki/strongroom/storage"
)

// The HSM's audit log for admin keys: the newest entries first, older
// pages by sequence number, and on request a check of the whole hash chain
// (as `ca hsm audit verify`). Entries never hold secrets (hsm/audit.go).

// AuditLog reads the HSM's audit log (*storage.DB).
type AuditLog interface {
	HSMAudit(ctx context.Context, fromSeq int64, limit int) ([]storage.HSMAuditEntry, error)
	HSMAuditHead(ctx context.Context) (int64, []byte, error)
}

const auditPage = 100

type auditData struct {
	Entries   []storage.HSMAuditEntry // newest first
	Head      int64                   // the last sequence number
	Older     int64                   // the "to" of the next page; 0: none
	Verified  bool                    // the chain was checked on this request
	Report    hsm.AuditReport
	Available bool
}

func (w *Console) audit(c *gin.Context, op *operator) {
	if !w.requireFullAdmin(c, op) {
		return
	}
	d := auditData{Available: w.o.Audit != nil}
	if !d.Available {
		w.render(c, http.StatusOK, "audit", page{Title: "HSM audit log", Op: op, Data: d})
		return
	}
	ctx := c.Request.Context()
	head, _, err := w.o.Audit.HSMAuditHead(ctx)
	if err != nil {
		w.fail(c, op, err)
		return
	}
	d.Head = head
	to := head
	if s := c.Query("to"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 {
			w.fail(c, op, core.Errorf(core.KindMalformed, "to must be a positive sequence number"))
			return
		}
		to = min(n, head)
	}
	from := max(to-auditPage+1, 1)
	if to >= 1 {
		es, err := w.o.Audit.HSMAudit(ctx, from, int(to-from+1))
		if err != nil {
			w.fail(c, op, err)
			return
		}
		for i := len(es) - 1; i >= 0; i-- {
			d.Entries = append(d.Entries, es[i])
		}
	}
	if from > 1 {
		d.Older = from - 1
	}
	if c.Query("verify") != "" && w.o.VerifyAudit != nil {
		if d.Report, err = w.o.VerifyAudit(ctx); err != nil {
			w.fail(c, op, err)
			return
		}
		d.Verified = true
		w.log.InfoContext(ctx, "console: audit chain verified", "entries", d.Report.Entries, "first_bad", d.Report.FirstBad, "by", op.principal())
	}
	w.render(c, http.StatusOK, "audit", page{Title: "HSM audit log", Op: op, Data: d})
}
