package sip

import sipmsg "github.com/emiago/sipgo/sip"

// sipgo v1.7.2 refuses to write any UDP message over UDPMTUSize-200 bytes (1,300), responses
// included. RFC 3261 §18.1.1's size rule is for requests (a client sends a large one over a
// congestion-controlled transport); a response to a request that came over UDP has no such
// way out and must still be sent (§18.2.2): the 404 to RFC 4475's longreq (20 Vias, ~3 KB)
// was lost. So the limit is raised to what one UDP datagram carries, for the whole process
// (docs/sip-edge.md, proposal 3 for upstream). The requests the switch makes itself (INVITE
// with its own SDP, ACK, BYE, CANCEL, OPTIONS) stay far under 1,300 bytes; one that did not
// would now go out fragmented where sipgo would have refused it.
func init() { sipmsg.UDPMTUSize = maxUDPPayload + 200 }

// maxUDPPayload is the largest UDP payload over IPv4 (65,535 - 8 - 20).
const maxUDPPayload = 65507
