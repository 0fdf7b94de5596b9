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

// trunkFor returns the trunk whose sources contain the request's source address: the one
// rule the edge uses too (edge.trunkIndex), so that what the edge lets through as a
// trunk's is what the handlers take as the trunk's.
func (s *Switch) trunkFor(req *sipmsg.Request) (*Trunk, bool) {
	if i := s.edge.trunkIndex(sourceIP(req.Source())); i >= 0 {
		return &s.cfg.Trunks[i], true
	}
	return nil, false
}
