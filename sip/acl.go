package sip

import (
	"net/netip"

	sipmsg "github.com/emiago/sipgo/sip"
)

// sourceIP is the IP of a message's source ("host:port"), or the invalid Addr.
func sourceIP(src string) netip.Addr {
	ap, err := netip.ParseAddrPort(src)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// trunkFor returns the trunk whose sources contain the request's source address.
func (s *Switch) trunkFor(req *sipmsg.Request) (*Trunk, bool) {
	ap, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return nil, false
	}
	ip := ap.Addr().Unmap()
	for i := range s.cfg.Trunks {
		for _, p := range s.cfg.Trunks[i].Sources {
			if p.Contains(ip) {
				return &s.cfg.Trunks[i], true
			}
		}
	}
	return nil, false
}
