//go:build cgo && !nopkcs11

package pkcs11

import (
	"sync/atomic"

	"github.com/ThalesGroup/crypto11"
)

// CountLogins counts the token logins the package makes until restore.
func CountLogins() (n *atomic.Int64, restore func()) {
	n = new(atomic.Int64)
	was := configure
	configure = func(c *crypto11.Config) (*crypto11.Context, error) {
		n.Add(1)
		return was(c)
	}
	return n, func() { configure = was }
}

// SetPIN changes the PIN t logs in with when it is opened again, as if
// the token's PIN were changed under a running node.
func (t *Token) SetPIN(pin string) { t.opts.PIN = pin }
