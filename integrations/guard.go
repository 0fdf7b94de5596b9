package integrations

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// Guard decides which addresses a webhook may connect to. It refuses the addresses that
// are not the public internet's: loopback, private (RFC 1918, fc00::/7), link-local (with
// the clouds' metadata service 169.254.169.254 and fd00:ec2::254), CGNAT (100.64.0.0/10),
// unspecified, multicast, broadcast and the other special-purpose ranges below; unless the
// operator allows a range that holds the address (webhooks.allow_cidrs).
type Guard struct {
	allow []netip.Prefix
}

// NewGuard makes a guard that allows the ranges in allow besides the public internet.
func NewGuard(allow []netip.Prefix) *Guard {
	g := &Guard{}
	for _, p := range allow {
		g.allow = append(g.allow, p.Masked())
	}
	return g
}

// special are the ranges refused besides those netip classifies (RFC 6890 and friends).
var special = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),         // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),     // CGNAT (RFC 6598)
	netip.MustParsePrefix("192.0.0.0/24"),      // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),      // documentation
	netip.MustParsePrefix("198.18.0.0/15"),     // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"),   // documentation
	netip.MustParsePrefix("203.0.113.0/24"),    // documentation
	netip.MustParsePrefix("240.0.0.0/4"),       // reserved, and the broadcast address
	netip.MustParsePrefix("fd00:ec2::254/128"), // AWS's metadata service over IPv6 (in fc00::/7 too)
	netip.MustParsePrefix("fec0::/10"),         // site-local (deprecated)
	netip.MustParsePrefix("2001:db8::/32"),     // documentation
	netip.MustParsePrefix("100::/64"),          // discard-only
}

// nat64 is the well-known NAT64 prefix: the IPv4 address in its last 32 bits is checked.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// Allowed tells whether a webhook may connect to ip.
func (g *Guard) Allowed(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range g.allow {
		if p.Contains(ip) {
			return true
		}
	}
	if nat64.Contains(ip) {
		b := ip.As16()
		return g.Allowed(netip.AddrFrom4([4]byte(b[12:])))
	}
	return !refused(ip)
}

func refused(ip netip.Addr) bool {
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
		return true
	}
	for _, p := range special {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// control is the dialer's Control: it runs for every address a connection is about to be
// made to, after the name was resolved, so that what a name resolves to is checked each
// time (DNS rebinding does not get around it).
func (g *Guard) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %q", ErrForbiddenAddress, address)
	}
	if !g.Allowed(ap.Addr()) {
		return &AddressError{Addr: ap.Addr().Unmap()}
	}
	return nil
}

// CheckURL says (an ErrURL) what is wrong with an endpoint's URL under the ranges allow
// allows: it must be https, or http to an address in allow (a test receiver on loopback,
// an operator's own network); an address the guard refuses is refused at once. A name is
// checked only when a delivery connects (Guard).
func CheckURL(raw string, allow []netip.Prefix) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || !u.IsAbs() {
		return fmt.Errorf("%w: must be an absolute https URL", ErrURL)
	}
	if u.User != nil || u.Fragment != "" {
		return fmt.Errorf("%w: must have no credentials and no fragment", ErrURL)
	}
	host := strings.TrimSuffix(u.Hostname(), ".")
	addr, isAddr := netip.ParseAddr(host)
	g := NewGuard(allow)
	inAllowed := false
	if isAddr == nil {
		for _, p := range g.allow {
			if p.Contains(addr.Unmap()) {
				inAllowed = true
			}
		}
		if !g.Allowed(addr) {
			return fmt.Errorf("%w: %s is not a public address (loopback, private, link-local, ...)", ErrURL, addr)
		}
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if inAllowed {
			return nil
		}
		return fmt.Errorf("%w: must be https (http only to an address in webhooks.allow_cidrs)", ErrURL)
	}
	return fmt.Errorf("%w: must be https", ErrURL)
}
