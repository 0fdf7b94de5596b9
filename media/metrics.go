package media

import (
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

type metrics struct {
	active         prometheus.Gauge
	rxCaller       prometheus.Counter
	rxCallee       prometheus.Counter
	lostCaller     prometheus.Counter
	lostCallee     prometheus.Counter
	relayed        prometheus.Counter
	strict         prometheus.Counter
	probation      prometheus.Counter
	oversized      prometheus.Counter
	unbridged      prometheus.Counter
	payloadType    prometheus.Counter
	bad            prometheus.Counter
	rtcp           prometheus.Counter
	sendErr        prometheus.Counter
	timeouts       prometheus.Counter
	transcoded     prometheus.Counter
	portsExhausted prometheus.Counter
	recorded       prometheus.Counter
	jitter         *prometheus.HistogramVec
	refused        *prometheus.CounterVec
	realtime       prometheus.Gauge
	ringLoops      prometheus.Gauge
	loopBusy       *prometheus.GaugeVec
	loopSessions   *prometheus.GaugeVec
	kernel         prometheus.Gauge
	kernelPackets  prometheus.Counter
	kernelErr      prometheus.Counter
	srtpAuth       prometheus.Counter
	srtpReplay     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, p *ports) metrics {
	packets := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "trackline_rtp_packets_total", Help: "Valid RTP packets received, by the leg they came from (caller, callee).",
	}, []string{"direction"})
	lost := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "trackline_rtp_lost_packets_total", Help: "RTP packets lost (RFC 3550) on the way in, by leg, counted at call end.",
	}, []string{"direction"})
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "trackline_rtp_dropped_total", Help: "Datagrams the anchor received and did not relay, by reason: strict_source (from an IP the leg may not latch onto, or not its latched source), probation (from an allowed IP, before the source passed probation), oversized (larger than the receive buffer, about 2 KB), bad_rtp (not valid RTP), payload_type (not the leg's G.711, telephone-event or comfort noise), unbridged (heard while the other leg hears the anchor: disclaimer, whisper, ringing), rtcp (RTCP ends at the anchor), send_error, srtp_auth (SRTP that failed authentication: a wrong key), srtp_replay (SRTP seen before).",
	}, []string{"reason"})
	m := metrics{
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "trackline_media_sessions_active", Help: "Calls whose media is anchored.",
		}),
		rxCaller: packets.WithLabelValues("caller"), rxCallee: packets.WithLabelValues("callee"),
		lostCaller: lost.WithLabelValues("caller"), lostCallee: lost.WithLabelValues("callee"),
		relayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "trackline_rtp_relayed_packets_total", Help: "RTP packets relayed from one leg to the other.",
		}),
		strict: dropped.WithLabelValues("strict_source"), bad: dropped.WithLabelValues("bad_rtp"),
		probation: dropped.WithLabelValues("probation"), oversized: dropped.WithLabelValues("oversized"),
		unbridged: dropped.WithLabelValues("unbridged"), payloadType: dropped.WithLabelValues("payload_type"),
		rtcp: dropped.WithLabelValues("rtcp"), sendErr: dropped.WithLabelValues("send_error"),
		srtpAuth: dropped.WithLabelValues("srtp_auth"), srtpReplay: dropped.WithLabelValues("srtp_replay"),
		timeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "trackline_rtp_timeouts_total", Help: "Calls ended because a leg sent no RTP within the RTP timeout.",
		}),
		transcoded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "trackline_media_transcoded_calls_total", Help: "Anchored calls whose legs used different G.711 laws.",
		}),
		portsExhausted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "trackline_media_port_exhaustions_total", Help: "Calls refused (488) because no RTP port pair was free.",
		}),
		recorded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "trackline_calls_recorded_total", Help: "Calls whose recording was finished and linked.",
		}),
		jitter: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "trackline_rtp_jitter_seconds", Help: "Interarrival jitter (RFC 3550) per call and leg, at call end.",
			Buckets: []float64{.001, .002, .005, .01, .02, .03, .05, .1, .2},
		}, []string{"direction"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trackline_recording_refused_total", Help: "Calls of recording customers that were not recorded, by reason (consent: professional secrecy without confirmed consent).",
		}, []string{"reason"}),
	}
	m.ringLoops = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "trackline_media_loops_io_uring", Help: "Packet loops that move packets through io_uring (media.io); the others use epoll.",
	})
	m.realtime = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "trackline_media_loops_realtime", Help: "Packet loops whose thread runs with real-time priority (media.realtime_priority); fewer than the loops means the priority was refused.",
	})
	m.loopBusy = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "trackline_media_loop_busy_ratio", Help: "Share of a core each packet loop's thread used over its last second, system calls included; new calls go to the first loop under 0.3 (media.loops).",
	}, []string{"loop"})
	m.loopSessions = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "trackline_media_loop_sessions", Help: "Anchored calls on each packet loop.",
	}, []string{"loop"})
	m.kernel = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "trackline_media_kernel_path", Help: "1 when bridged calls' packets are forwarded in the kernel (media.kernel), 0 when the packet loops relay them all.",
	})
	m.kernelPackets = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "trackline_media_kernel_packets_total", Help: "RTP packets the kernel path forwarded (also counted in trackline_rtp_relayed_packets_total).",
	})
	m.kernelErr = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "trackline_media_kernel_flow_errors_total", Help: "Call directions the kernel path's flow table refused; their packets stay in user space.",
	})
	m.refused.WithLabelValues("consent")
	freePorts := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "trackline_media_ports_free", Help: "Free RTP port pairs.",
	}, func() float64 { return float64(p.available()) })
	if reg != nil {
		reg.MustRegister(packets, lost, dropped, m.active, m.relayed, m.timeouts, m.transcoded, m.portsExhausted, m.recorded, m.jitter, m.refused, m.realtime, m.ringLoops, m.loopBusy, m.loopSessions, m.kernel, m.kernelPackets, m.kernelErr, freePorts)
	}
	return m
}

func closeFD(fds ...int) {
	for _, fd := range fds {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}
