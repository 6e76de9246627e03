package core

import (
	"context"
	"errors"
)

// StatusClientClosed is the status a request whose client went away
// before the answer is logged and counted with (nginx's 499): nobody
// reads an answer, and it is no failure of the server's.
const StatusClientClosed = 499

// ClientGone reports whether err is the end of a request whose client
// went away: ctx, the request's context, is canceled and err says so.
func ClientGone(ctx context.Context, err error) bool {
	return errors.Is(err, context.Canceled) && ctx.Err() != nil
}
