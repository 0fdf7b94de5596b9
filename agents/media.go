package agents

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	"github.com/trackline/trackline/internal/textutil"
)

// law is a G.711 law as both sides name it.
type law struct {
	mime string // as WebRTC names it
	pt   uint8  // the static RTP payload type (RFC 3551)
	name string // as SDP's rtpmap names it
}

var (
	pcmu = law{mime: webrtc.MimeTypePCMU, pt: 0, name: "PCMU"}
	pcma = law{mime: webrtc.MimeTypePCMA, pt: 8, name: "PCMA"}
)

// maxOffer bounds the anchor's SDP that parseOffer reads.
const maxOffer = 16 << 10

// parseOffer reads the anchor's offer for the business line: the port of its first RTP/AVP
// audio stream and the first G.711 law there. The bridge negotiates that law alone with the
// browser, so nothing is transcoded.
func parseOffer(b []byte) (law, uint16, error) {
	if len(b) == 0 || len(b) > maxOffer {
		return law{}, 0, errors.New("no offer from the media anchor")
	}
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(string(b)); err != nil {
		return law{}, 0, fmt.Errorf("anchor offer: %w", err)
	}
	for _, m := range sd.MediaDescriptions {
		if m.MediaName.Media != "audio" || strings.Join(m.MediaName.Protos, "/") != "RTP/AVP" {
			continue
		}
		port := m.MediaName.Port.Value
		if port <= 0 || port > 65535 {
			return law{}, 0, fmt.Errorf("anchor offer: port %d", port)
		}
		for _, f := range m.MediaName.Formats {
			switch f {
			case "0":
				return pcmu, uint16(port), nil
			case "8":
				return pcma, uint16(port), nil
			}
		}
		return law{}, 0, errors.New("anchor offer: no G.711 law")
	}
	return law{}, 0, errors.New("anchor offer: no RTP/AVP audio stream")
}

// bridgeSDP is the bridge's answer to the anchor: plain RTP of one law on the bridge socket.
func bridgeSDP(at netip.AddrPort, lw law, id string) []byte {
	ip := at.Addr().String()
	var b strings.Builder
	b.WriteString("v=0\r\n")
	b.WriteString("o=trackline-agent " + strconv.FormatUint(uint64(at.Port()), 10) + " 1 IN IP4 " + ip + "\r\n")
	b.WriteString("s=agent " + id + "\r\n")
	b.WriteString("c=IN IP4 " + ip + "\r\n")
	b.WriteString("t=0 0\r\n")
	pt := strconv.Itoa(int(lw.pt))
	b.WriteString("m=audio " + strconv.Itoa(int(at.Port())) + " RTP/AVP " + pt + "\r\n")
	b.WriteString("a=rtpmap:" + pt + " " + lw.name + "/8000\r\n")
	b.WriteString("a=ptime:20\r\na=sendrecv\r\n")
	return []byte(b.String())
}

// newAPIs builds one pion API per law: a media engine with only that codec, RTCP reports,
// and the ICE settings of cfg.
func newAPIs(cfg *Config, log *slog.Logger) (map[string]*webrtc.API, error) {
	var se webrtc.SettingEngine
	se.LoggerFactory = &pionLogs{log: log}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIncludeLoopbackCandidate(cfg.Loopback)
	se.SetICETimeouts(4*time.Second, 8*time.Second, 2*time.Second)
	if cfg.PortMin != 0 {
		if err := se.SetEphemeralUDPPortRange(cfg.PortMin, cfg.PortMax); err != nil {
			return nil, fmt.Errorf("agents: UDP ports: %w", err)
		}
	}
	if len(cfg.Interfaces) > 0 {
		names := slices.Clone(cfg.Interfaces)
		se.SetInterfaceFilter(func(name string) bool { return slices.Contains(names, name) })
	}
	if len(cfg.IPs) > 0 {
		ips := slices.Clone(cfg.IPs)
		se.SetIPFilter(func(ip net.IP) bool {
			a, ok := netip.AddrFromSlice(ip)
			return ok && slices.Contains(ips, a.Unmap())
		})
	}
	if cfg.loopbackOnly() {
		se.SetRemoteIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	}
	if len(cfg.AnnounceIPs) > 0 {
		rule := webrtc.ICEAddressRewriteRule{External: slices.Clone(cfg.AnnounceIPs), AsCandidateType: webrtc.ICECandidateTypeHost}
		if err := se.SetICEAddressRewriteRules(rule); err != nil {
			return nil, fmt.Errorf("agents: announce addresses: %w", err)
		}
	}
	apis := map[string]*webrtc.API{}
	for _, lw := range []law{pcmu, pcma} {
		me := &webrtc.MediaEngine{}
		err := me.RegisterCodec(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: lw.mime, ClockRate: 8000},
			PayloadType:        webrtc.PayloadType(lw.pt),
		}, webrtc.RTPCodecTypeAudio)
		if err != nil {
			return nil, fmt.Errorf("agents: register %s: %w", lw.name, err)
		}
		ir := &interceptor.Registry{}
		if err := webrtc.ConfigureRTCPReports(ir); err != nil {
			return nil, fmt.Errorf("agents: RTCP reports: %w", err)
		}
		apis[lw.mime] = webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	}
	return apis, nil
}

// connect builds the winner's media: a PeerConnection with one G.711 track each way, the
// offer to the page, its answer, and ICE and DTLS until connected; then the pumps between the
// PeerConnection and the bridge socket start.
func (c *call) connect(ctx context.Context, a *agent) error {
	h := c.h
	sock, err := net.ListenUDP("udp4", &net.UDPAddr{IP: h.cfg.MediaIP.AsSlice()})
	if err != nil {
		return fmt.Errorf("bridge socket: %w", err)
	}
	pc, err := h.apis[c.law.mime].NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		sock.Close()
		return fmt.Errorf("peer connection: %w", err)
	}
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		sock.Close()
		pc.Close()
		return errEnded
	}
	c.pc, c.sock = pc, sock
	c.mu.Unlock()

	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: c.law.mime, ClockRate: 8000}, "audio", "trackline")
	if err != nil {
		return err
	}
	sender, err := pc.AddTrack(track)
	if err != nil {
		return fmt.Errorf("add track: %w", err)
	}
	connected, failed := make(chan struct{}), make(chan struct{})
	var connOnce, failOnce sync.Once
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		switch s {
		case webrtc.PeerConnectionStateConnected:
			connOnce.Do(func() { close(connected) })
		case webrtc.PeerConnectionStateFailed:
			c.countFailure(pc)
			failOnce.Do(func() { close(failed) })
			if isDone(connected) {
				c.end("media_failed", false) // in pion's handler goroutine, never a pump
			}
		}
	})
	pc.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		if t.Kind() != webrtc.RTPCodecTypeAudio {
			return
		}
		c.mu.Lock()
		if c.ended {
			c.mu.Unlock()
			return
		}
		c.pumps.Add(1)
		c.mu.Unlock()
		defer c.pumps.Done()
		c.fromAgent(t)
	})

	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("local description: %w", err)
	}
	deadline := time.NewTimer(h.cfg.ConnectTimeout)
	defer deadline.Stop()
	select {
	case <-gathered:
	case <-deadline.C:
		return errors.New("gathering host candidates timed out")
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return errEnded
	}
	a.send(outMsg{Type: msgOffer, CallID: c.id, SDP: pc.LocalDescription().SDP})

	select {
	case ev := <-c.events:
		if ev.kind != evAnswer {
			return fmt.Errorf("unexpected event %d", ev.kind)
		}
		if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ev.sdp}); err != nil {
			a.refuse(refuse(errBadField, c.id, "sdp: not an answer to the offer: %s", textutil.Clip(err.Error(), 200)))
			return fmt.Errorf("agent answer: %w", err)
		}
	case <-deadline.C:
		return errors.New("no answer from the agent page")
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return errEnded
	}

	select {
	case <-connected:
	case <-failed:
		return errors.New("ICE or DTLS failed")
	case <-deadline.C:
		c.countFailure(pc)
		return errors.New("ICE and DTLS did not connect in time")
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return errEnded
	}

	local := sock.LocalAddr().(*net.UDPAddr).AddrPort()
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return errEnded
	}
	c.sdp = bridgeSDP(netip.AddrPortFrom(local.Addr().Unmap(), local.Port()), c.law, c.id)
	c.pumps.Add(2)
	go c.toAgent(sock, track)
	go c.drainRTCP(sender)
	c.mu.Unlock()
	h.mu.Lock()
	c.state = stateConnected
	h.mu.Unlock()
	a.send(outMsg{Type: msgConnected, CallID: c.id})
	return nil
}

// countFailure counts a call's media failure once, by the stage it stopped at: ICE when no
// candidate pair ever connected, DTLS when ICE did.
func (c *call) countFailure(pc *webrtc.PeerConnection) {
	c.failed.Do(func() {
		stage := "ice"
		switch pc.ICEConnectionState() {
		case webrtc.ICEConnectionStateConnected, webrtc.ICEConnectionStateCompleted:
			stage = "dtls"
		}
		c.h.m.failures.WithLabelValues(stage).Inc()
	})
}

// toAgent moves the anchor's RTP to the browser: only from the anchor's socket, only the
// negotiated law. pion rewrites SSRC and payload type and encrypts (SRTP). It ends when the
// bridge socket closes.
func (c *call) toAgent(sock *net.UDPConn, track *webrtc.TrackLocalStaticRTP) {
	defer c.pumps.Done()
	buf := make([]byte, 1500)
	for {
		n, from, err := sock.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if n < 12 || from.Addr().Unmap() != c.anchor.Addr() || from.Port() != c.anchor.Port() || buf[1]&0x7f != c.law.pt {
			continue
		}
		track.Write(buf[:n])
	}
}

// fromAgent moves the browser's RTP (decrypted by pion) to the anchor, as a SIP line would
// send it: the negotiated law only, without the browser's header extensions and padding. It
// ends when the PeerConnection closes.
func (c *call) fromAgent(t *webrtc.TrackRemote) {
	buf, out := make([]byte, 1500), make([]byte, 1500)
	var p rtp.Packet
	for {
		n, _, err := t.Read(buf)
		if err != nil {
			return
		}
		if p.Unmarshal(buf[:n]) != nil || p.PayloadType != c.law.pt {
			continue
		}
		p.Extension, p.ExtensionProfile, p.Extensions = false, 0, p.Extensions[:0]
		p.Padding, p.Header.PaddingSize, p.PaddingSize = false, 0, 0
		m, err := p.MarshalTo(out)
		if err != nil {
			continue
		}
		c.sock.WriteToUDPAddrPort(out[:m], c.anchor)
	}
}

// drainRTCP reads the browser's RTCP, so that pion's interceptors see it. It ends when the
// PeerConnection closes.
func (c *call) drainRTCP(s *webrtc.RTPSender) {
	defer c.pumps.Done()
	buf := make([]byte, 1500)
	for {
		if _, _, err := s.Read(buf); err != nil {
			return
		}
	}
}

// pionLogs sends pion's log lines to the debug level: they name agents' addresses.
type pionLogs struct{ log *slog.Logger }

func (f *pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return &pionLogger{log: f.log.With("pion", scope)}
}

type pionLogger struct{ log *slog.Logger }

func (l *pionLogger) Trace(string)          {}
func (l *pionLogger) Tracef(string, ...any) {}
func (l *pionLogger) Debug(msg string)      { l.put(msg, "") }
func (l *pionLogger) Info(msg string)       { l.put(msg, "") }
func (l *pionLogger) Warn(msg string)       { l.put(msg, "warn") }
func (l *pionLogger) Error(msg string)      { l.put(msg, "error") }
func (l *pionLogger) Debugf(f string, args ...any) {
	l.putf("", f, args)
}
func (l *pionLogger) Infof(f string, args ...any)  { l.putf("", f, args) }
func (l *pionLogger) Warnf(f string, args ...any)  { l.putf("warn", f, args) }
func (l *pionLogger) Errorf(f string, args ...any) { l.putf("error", f, args) }

func (l *pionLogger) put(msg, level string) {
	if level != "" {
		l.log.Debug(msg, "level", level)
	} else {
		l.log.Debug(msg)
	}
}

// putf formats only when the debug level is on.
func (l *pionLogger) putf(level, f string, args []any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.put(fmt.Sprintf(f, args...), level)
	}
}
