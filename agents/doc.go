// Package agents lets a browser tab be a business line: the line "webrtc:<group>" rings the
// online agents of that group, and the one that accepts talks to the caller over WebRTC.
//
// It owns the registry of online agents (per customer and group), their signalling (JSON
// messages over a WebSocket on the public API listener, see docs/api.md), the ringing (all
// idle agents of the group at once, the first accept wins, the others stop ringing), and the
// media bridge of each answered call: a pion/webrtc PeerConnection (ICE with host candidates,
// DTLS-SRTP) on one side and a UDP socket on the other that talks plain RTP with the call's
// media anchor (package media), exactly like a SIP business line would. Browsers speak G.711
// in WebRTC, so the bridge negotiates the caller's law and copies RTP payloads: no
// transcoding. The anchor records the bridge's audio as the business line's (right) channel,
// and plays the disclaimer and whisper, unchanged.
//
// It does not own call state: package sip drives each call through the callseam.Agents seam that
// Hub implements, and ends it through callseam.AgentCall.
//
// Caveats: signalling is not trickled (the server's offer carries its host candidates, the
// page answers once it has gathered its own); the bridge's UDP socket costs one extra
// loopback hop per packet and direction (measured in docs/benchmarks.md); ICE runs over UDP
// on IPv4 only; pion's own log lines go to the debug level, since they name agents' addresses.
package agents
