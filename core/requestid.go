package core

import (
	"context"
	"sync/atomic"
)

type requestKey struct{}

// request is what a request's context carries for the log lines written
// while serving it: its id, and who made it once a front end has
// authenticated the caller.
type request struct {
	id        string
	principal atomic.Pointer[string]
}

// WithRequestID returns ctx carrying the id of the request being served,
// so the log lines written while serving it carry it too.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestKey{}, &request{id: id})
}

// RequestID is the id WithRequestID put in ctx, or "".
func RequestID(ctx context.Context) string {
	if r, ok := ctx.Value(requestKey{}).(*request); ok {
		return r.id
	}
	return ""
}

// SetPrincipal records who made the request served with ctx (an API key
// "apikey:<id>", a client certificate "mtls:<name>"), for the request's
// log event; the server reads it when the request ends. Without
// WithRequestID it does nothing.
func SetPrincipal(ctx context.Context, name string) {
	if r, ok := ctx.Value(requestKey{}).(*request); ok {
		r.principal.Store(&name)
	}
}

// Principal is what SetPrincipal recorded for the request, or "".
func Principal(ctx context.Context) string {
	if r, ok := ctx.Value(requestKey{}).(*request); ok {
		if p := r.principal.Load(); p != nil {
			return *p
		}
	}
	return ""
}
