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
	if v := os.Getenv(EnvHSMPIN); v != "" {
		return v, nil
	}
	path := Path(dir, c.HSM.PINFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("no HSM PIN: set %s or provide %s: %w", EnvHSMPIN, path, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// PKCS11PIN returns the PKCS#11 token's user PIN from STRONGROOM_PKCS11_PIN,
// or from hsm.pkcs11.pin_file.
func (c *Config) PKCS11PIN(dir string) (string, error) {
	if v := os.Getenv(EnvPKCS11PIN); v != "" {
		return v, nil
	}
	if c.HSM.PKCS11.PINFile == "" {
		return "", fmt.Errorf("no PKCS#11 PIN: set %s", EnvPKCS11PIN)
	}
	path := Path(dir, c.HSM.PKCS11.PINFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("no PKCS#11 PIN: set %s or provide %s: %w", EnvPKCS11PIN, path, err)
	}
	return strings.TrimSpace(string(b)), nil
}
