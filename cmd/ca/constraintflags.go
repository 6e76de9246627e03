package main

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/strongroom-pki/strongroom/ca"
)

// nameConstraintFlags are --permit and --exclude: the name constraints
// (RFC 5280 §4.2.1.10) of a CA certificate a ceremony makes.
type nameConstraintFlags struct{ permit, exclude []string }

func (n *nameConstraintFlags) register(f *pflag.FlagSet, cert string) {
	f.StringSliceVar(&n.permit, "permit", nil, "name constraint of the "+cert+": the only names certificates below it may carry, by type "+
		"(dns:corp.internal covers it and every name under it; ip:10.0.0.0/8; email:corp.example or email:.corp.example; uri:corp.internal or uri:.corp.internal); repeatable")
	f.StringSliceVar(&n.exclude, "exclude", nil, "name constraint of the "+cert+": names certificates below it may not carry (dns:secret.corp.internal, ip:0.0.0.0/0 for no address, …); repeatable")
}

// parse reads the flags.
func (n *nameConstraintFlags) parse() (ca.NameConstraints, error) {
	nc, err := ca.ParseNameConstraints(n.permit, n.exclude)
	if err != nil {
		return nc, fmt.Errorf("--permit/--exclude: %w", err)
	}
	return nc, nil
}

// keepsServerCert refuses constraints under which the CA could not issue
// its own HTTPS certificate for hostname.
func keepsServerCert(nc ca.NameConstraints, hostname string) error {
	if why := serverCertRefusal(nc, hostname); why != "" {
		return fmt.Errorf("--permit/--exclude: the CA's own HTTPS certificate (for %s) would be refused: %s; permit it, or give the CA a hostname inside them", hostname, why)
	}
	return nil
}
