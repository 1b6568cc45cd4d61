package keyfile

import (
	"fmt"
	"strings"
)

// JOSE names of the two signature algorithms Okera supports.
const (
	RS256 = "RS256"
	RS512 = "RS512"
)

// DefaultAlgorithm is Okera's JWT_ALGORITHM default.
const DefaultAlgorithm = RS512

// ParseAlgorithm maps a configured algorithm name to its JOSE name. Okera
// spells them RSA256 and RSA512; the JOSE spellings RS256 and RS512 are
// accepted too, in any letter case. The empty string means Okera's default,
// RS512.
func ParseAlgorithm(s string) (string, error) {
	switch strings.ToUpper(s) {
	case "":
		return DefaultAlgorithm, nil
	case "RSA256", "RS256":
		return RS256, nil
	case "RSA512", "RS512":
		return RS512, nil
	}
	return "", fmt.Errorf("unsupported algorithm %q: use RSA256 or RSA512 (RS256 and RS512 are accepted too, in any case)", s)
}
