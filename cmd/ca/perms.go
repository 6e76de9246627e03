package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/strongroom-pki/strongroom/config"
)

// looseSecretFiles returns the data directory's files holding unseal
// material or PINs that other users may read or write (any group or other
// permission bit), with their modes.
func looseSecretFiles(n *node) map[string]os.FileMode {
	paths := []string{config.Path(n.dir, n.cfg.HSM.KeyFile), config.Path(n.dir, n.cfg.HSM.PINFile),
		config.Path(n.dir, n.cfg.HSM.AppsPINFile), filepath.Join(n.dir, "officer.pin"), config.Path(n.dir, n.cfg.HSM.PKCS11.PINFile)}
	loose := map[string]os.FileMode{}
	for _, p := range paths {
		if p == "" {
			continue
		}
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o077 != 0 {
			loose[p] = fi.Mode().Perm()
		}
	}
	return loose
}

// warnLooseSecrets logs a warning for each secret file others may read, and
// prints it to w too when w is not nil (CLI commands, whose log is
// discarded). It names files and modes, never their contents.
func warnLooseSecrets(n *node, w io.Writer) {
	for p, mode := range looseSecretFiles(n) {
		n.log.Warn("secret file is accessible to other users; chmod 600 it", "file", p, "mode", fmt.Sprintf("%04o", mode))
		if w != nil {
			fmt.Fprintf(w, "warning: %s is accessible to other users (mode %04o); chmod 600 it\n", p, mode)
		}
	}
}
