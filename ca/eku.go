package ca

import (
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
)

// Extended key usage chains: a CA certificate that carries an extended
// key usage limits every certificate below it to its usages, for Go, NSS
// and Windows. The pipeline keeps each certificate within its issuer
// chain's (prepare), choosing an intermediate that allows the profile's
// usage when the request names none.

// EKURefusal says why a certificate below the issuer with the extended key
// usages ekus would be refused by verifiers that chain extended key usage
// (Go, NSS, Windows: a CA certificate that carries one limits every
// certificate below it to its usages), or "" when none of the chain's
// limits it. OCSPSigning is not chained (RFC 6960 delegated responders
// are issued by the CA itself, and OpenSSL, Go and mozilla::pkix accept
// them under any CA), and a certificate without extended key usage is not
// limited by one.
//
// A profile's usages given as OIDs Go has no name for (unknownExtKeyUsage)
// are not checked: no intermediate can be made for them here.
func (i *Issuer) EKURefusal(ekus []x509.ExtKeyUsage) string { return ChainEKURefusal(i.chain, ekus) }

// ChainEKURefusal is Issuer.EKURefusal for a chain read from files (the
// CLI's checks, before any Issuer exists).
func ChainEKURefusal(chain []*x509.Certificate, ekus []x509.ExtKeyUsage) string {
	for _, c := range chain {
		if len(c.ExtKeyUsage) == 0 && len(c.UnknownExtKeyUsage) == 0 || slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageAny) {
			continue
		}
		for _, u := range ekus {
			if u != x509.ExtKeyUsageOCSPSigning && !slices.Contains(c.ExtKeyUsage, u) {
				return fmt.Sprintf("extended key usage %s is outside %q's (%s): verifiers that chain it (Go, NSS, Windows) would refuse the certificate",
					EKUName(u), c.Subject.CommonName, ekuNames(c.ExtKeyUsage))
			}
		}
	}
	return ""
}

// EKUName is an extended key usage as profiles and flags write it.
func EKUName(u x509.ExtKeyUsage) string {
	for name, v := range ekuByName {
		if v == u {
			return name
		}
	}
	return fmt.Sprintf("usage %d", u)
}

// ekuByName are the extended key usages `ca issuer add --eku` takes.
var ekuByName = map[string]x509.ExtKeyUsage{
	"serverAuth": x509.ExtKeyUsageServerAuth, "clientAuth": x509.ExtKeyUsageClientAuth,
	"codeSigning": x509.ExtKeyUsageCodeSigning, "emailProtection": x509.ExtKeyUsageEmailProtection,
	"timeStamping": x509.ExtKeyUsageTimeStamping, "ocspSigning": x509.ExtKeyUsageOCSPSigning,
}

// ParseEKU reads an extended key usage name (serverAuth, clientAuth,
// codeSigning, emailProtection, timeStamping, ocspSigning).
func ParseEKU(name string) (x509.ExtKeyUsage, error) {
	if u, ok := ekuByName[name]; ok {
		return u, nil
	}
	return 0, fmt.Errorf("extended key usage %q: want serverAuth, clientAuth, codeSigning, emailProtection, timeStamping or ocspSigning", name)
}

func ekuNames(us []x509.ExtKeyUsage) string {
	names := make([]string, len(us))
	for i, u := range us {
		names[i] = EKUName(u)
	}
	if len(names) == 0 {
		return "none known"
	}
	return strings.Join(names, ", ")
}

// issuerForEKU is the first usable intermediate (in the default order)
// whose chain allows ekus, or "". A root is never chosen: it signs no
// end-entity certificate unless named.
func (c *CA) issuerForEKU(ekus []x509.ExtKeyUsage) string {
	now := c.now()
	for _, id := range c.order {
		if is := c.issuers[id]; len(is.chain) > 1 && c.statusAt(id, now).Usable() && is.EKURefusal(ekus) == "" {
			return id
		}
	}
	return ""
}

// ekuFlag writes ekus as `ca issuer add --eku` takes them.
func ekuFlag(ekus []x509.ExtKeyUsage) string {
	names := make([]string, 0, len(ekus))
	for _, u := range ekus {
		if u != x509.ExtKeyUsageOCSPSigning {
			names = append(names, EKUName(u))
		}
	}
	return strings.Join(names, ",")
}
