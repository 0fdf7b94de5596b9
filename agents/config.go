package agents

import (
	"fmt"
	"net/netip"
	"time"
)

// Config configures the hub.
type Config struct {
	// MediaIP is the address of the media anchor's RTP sockets: each call's bridge socket
	// binds there and sends to the anchor's port on it. Unspecified or invalid means 127.0.0.1.
	MediaIP netip.Addr
	// IPs restricts the host candidates to these local addresses; Interfaces to these
	// network interfaces. Empty: every address pion finds (loopback only with Loopback).
	IPs        []netip.Addr
	Interfaces []string
	// PortMin and PortMax bound the UDP ports of ICE (0 and 0: any ephemeral port).
	PortMin, PortMax uint16
	// AnnounceIPs replace the host candidates' addresses (1:1 NAT).
	AnnounceIPs []string
	// Loopback offers loopback candidates too (an agent on the same host, tests).
	Loopback bool
	// ICEServers are handed to the agent page, for agents behind NAT (STUN, TURN).
	ICEServers []ICEServer
	// ConnectTimeout bounds the time from an agent's accept until its media is connected
	// (default 10 s); LoginTimeout the time a new WebSocket has to log in (default 10 s).
	ConnectTimeout time.Duration
	LoginTimeout   time.Duration
	// MaxMessage is the largest signalling message accepted, in bytes (default 16 KiB).
	MaxMessage int64
	// MaxAgents bounds the connected agent pages of one customer (default 100).
	MaxAgents int
}

// ICEServer is a STUN or TURN server as RTCPeerConnection takes it (RTCIceServer).
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

func (c *Config) defaults() error {
	if !c.MediaIP.IsValid() || c.MediaIP.IsUnspecified() {
		c.MediaIP = netip.MustParseAddr("127.0.0.1")
	}
	if !c.MediaIP.Is4() {
		return fmt.Errorf("agents: media address %s: want IPv4", c.MediaIP)
	}
	if (c.PortMin == 0) != (c.PortMax == 0) || c.PortMax < c.PortMin {
		return fmt.Errorf("agents: UDP port range %d-%d", c.PortMin, c.PortMax)
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	if c.LoginTimeout <= 0 {
		c.LoginTimeout = 10 * time.Second
	}
	if c.MaxMessage <= 0 {
		c.MaxMessage = 16 << 10
	}
	if c.MaxAgents <= 0 {
		c.MaxAgents = 100
	}
	return nil
}

// loopbackOnly reports whether every configured address is a loopback one: such a server can
// reach no agent elsewhere, so remote candidates are limited to loopback as well.
func (c *Config) loopbackOnly() bool {
	if len(c.IPs) == 0 {
		return false
	}
	for _, ip := range c.IPs {
		if !ip.IsLoopback() {
			return false
		}
	}
	return true
}
