package core

import "context"

type requestIDKey struct{}

// WithRequestID returns ctx carrying the id of the request being served,
// so the log lines written while serving it carry it too.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID is the id WithRequestID put in ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}
