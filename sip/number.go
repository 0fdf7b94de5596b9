package sip

import (
	"strings"

	"github.com/trackline/trackline/pool/e164"
)

// dialledNumber reads a Request-URI or To user as E.164: "+31850000101", "0031850000101",
// "0850000101" (national, per the country code), and the international form without '+'
// that many trunks send ("31850000101").
func dialledNumber(user, cc string) (string, error) {
	n, err := e164.Normalize(user, cc)
	if err == nil {
		return n, nil
	}
	if len(user) >= 8 && strings.HasPrefix(user, cc) && strings.Trim(user, "0123456789") == "" && e164.Valid("+"+user) {
		return "+" + user, nil
	}
	return "", err
}
