// Package callseam is the seam between a call's owner and the packages that serve its legs.
//
// Package sip owns each call, from the trunk's INVITE to the finished record. It drives the
// call's media through Media and MediaSession (package media implements them: the RTP
// anchor) and rings browser agents through Agents (package agents implements it). The
// interfaces live here, below all three, so that the RTP engine and the agent hub never link
// the SIP stack and sip never links them: cmd wires the implementations in.
//
// It holds interfaces, the values that cross them and their sentinel errors; no behaviour.
package callseam
