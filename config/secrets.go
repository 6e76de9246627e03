package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Environment variables that carry secrets. None of them is ever written to
// the configuration file or a log.
const (
	EnvDatabaseDSN   = "STRONGROOM_DATABASE_DSN"
	EnvRedisPassword = "STRONGROOM_REDIS_PASSWORD"
	EnvHSMPIN        = "STRONGROOM_HSM_PIN"
	EnvPassphrase    = "STRONGROOM_HSM_PASSPHRASE"
	EnvOfficerPIN    = "STRONGROOM_OFFICER_PIN"
	EnvPKCS11PIN     = "STRONGROOM_PKCS11_PIN"
	EnvAppsPIN       = "STRONGROOM_APPS_PIN"
)

// Path resolves a path from the configuration against the data directory.
func Path(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// DatabaseDSN returns the DSN to open: the environment's if set, else the
// file's, with a SQLite path resolved against the data directory.
func (c *Config) DatabaseDSN(dir string) string {
	if v := os.Getenv(EnvDatabaseDSN); v != "" {
		return v
	}
	if c.Database.Driver == "sqlite" {
		return Path(dir, c.Database.DSN)
	}
	return c.Database.DSN
}

// HSMPIN returns the CA user's PIN from STRONGROOM_HSM_PIN, or from the PIN
// file in the data directory.
func (c *Config) HSMPIN(dir string) (string, error) {
	return pinFrom(EnvHSMPIN, Path(dir, c.HSM.PINFile), "HSM PIN")
}

// AppsPIN returns the key service user's PIN from STRONGROOM_APPS_PIN, or
// from its PIN file in the data directory.
func (c *Config) AppsPIN(dir string) (string, error) {
	return pinFrom(EnvAppsPIN, Path(dir, c.HSM.AppsPINFile), "PIN for the HSM user "+c.HSM.AppsUser)
}

// pinFrom reads a PIN from the environment variable env, else from path.
func pinFrom(env, path, what string) (string, error) {
	if v := os.Getenv(env); v != "" {
		return v, nil
	}
	if path == "" {
		return "", fmt.Errorf("no %s: set %s", what, env)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("no %s: set %s or provide %s: %w", what, env, path, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// PKCS11PIN returns the PKCS#11 token's user PIN from STRONGROOM_PKCS11_PIN,
// or from hsm.pkcs11.pin_file.
func (c *Config) PKCS11PIN(dir string) (string, error) {
	return pinFrom(EnvPKCS11PIN, Path(dir, c.HSM.PKCS11.PINFile), "PKCS#11 PIN")
}
