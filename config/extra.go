package config

// Extra holds the sections of the front ends: issuance policy and
// profiles, ACME endpoints, OCSP and CRLs.
type Extra struct{}

func (e *Extra) applyDefaults(c *Config) {}

func (e *Extra) validate(v *validator) {}
