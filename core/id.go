package core

import (
	"fmt"
	"regexp"
)

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// CheckID refuses a name that cannot be an id (issuers, profiles, ACME
// endpoints): ids appear in file names, URL paths, labels and metrics.
func CheckID(value string) error {
	if !idPattern.MatchString(value) {
		return fmt.Errorf("%q must be 1-63 lowercase letters, digits or dashes", value)
	}
	return nil
}
