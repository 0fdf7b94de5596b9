package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/trackline/trackline/internal/cputime"
)

// report is what a run prints (as one JSON object with -json). Packet counts, loss and
// latency cover the steady window only.
type report struct {
	Calls        int            `json:"calls"`
	CallsPlaced  int            `json:"calls_placed"`
	CallsUp      int            `json:"calls_up"`
	CallsFailed  int            `json:"calls_failed"`  // setup failed or never placed
	Failures     map[string]int `json:"failures"`      // why: SIP status, "timeout", "sdp", ...
	CallsDropped int            `json:"calls_dropped"` // up, then ended by the far side before the hang-up
	ByeFailed    int            `json:"bye_failed"`
	LineUp       int            `json:"line_up"`       // calls the line answered and got the ACK for
	LineRejected int            `json:"line_rejected"` // INVITEs the line could not match to a call
	LineFailed   int            `json:"line_failed"`
	SetupRate    float64        `json:"setup_rate"`
	SetupMs      quantiles      `json:"setup_ms"` // INVITE to 200 at the trunk

	DurationS         float64 `json:"duration_s"`
	WindowStartUnixMs int64   `json:"window_start_unix_ms,omitempty"`
	WindowEndUnixMs   int64   `json:"window_end_unix_ms,omitempty"`
	CallSeconds       float64 `json:"call_seconds"` // sum over answered calls of answer to BYE

	PacketsSent        uint64               `json:"packets_sent"`
	PacketsReceived    uint64               `json:"packets_received"` // distinct
	PacketsDuplicate   uint64               `json:"packets_duplicate"`
	LossPct            lossReport           `json:"loss_pct"`
	Directions         map[string]dirReport `json:"directions"`
	StreamsWithLoss    int                  `json:"streams_with_loss"`
	WorstStreamLossPct float64              `json:"worst_stream_loss_pct"`
	LatencyUs          latencyReport        `json:"latency_us"`    // kernel receive time minus send time
	ReadDelayUs        latencyReport        `json:"read_delay_us"` // the generator's own: read time minus kernel receive time
	NoKernelTimestamp  uint64               `json:"no_kernel_timestamp"`

	ForeignPackets   uint64  `json:"foreign_packets"`   // any time: RTP without our stamp
	MisroutedPackets uint64  `json:"misrouted_packets"` // ours, on another call's or direction's socket
	EarlyPackets     uint64  `json:"early_packets"`     // ours, sent before the window
	LatePackets      uint64  `json:"late_packets"`
	MalformedPackets uint64  `json:"malformed_packets"`
	SendErrors       uint64  `json:"send_errors"`
	SenderLateSteps  uint64  `json:"sender_late_steps"` // pacing steps in the window begun more than a tick late
	SenderLateMaxUs  float64 `json:"sender_late_max_us"`
	// GeneratorRealtime: whether the media loops got -rt-priority (null without it), and
	// why not.
	GeneratorRealtime    *bool  `json:"generator_realtime,omitempty"`
	GeneratorRealtimeErr string `json:"generator_realtime_error,omitempty"`

	GeneratorCPUS          float64 `json:"generator_cpu_s"`        // the whole run
	GeneratorWindowCPUS    float64 `json:"generator_window_cpu_s"` // the window only
	GeneratorCPUPctPerCall float64 `json:"generator_cpu_pct_per_call"`
	OtherWindowCPUS        float64 `json:"other_window_cpu_s"`  // every other process (and the switch without -switch-pid), the window only
	StolenWindowCPUS       float64 `json:"stolen_window_cpu_s"` // taken by the hypervisor from this machine's CPUs in the window (steal)

	Switch *switchReport `json:"switch,omitempty"`
	Error  string        `json:"error,omitempty"`
}

type quantiles struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

type lossReport struct {
	TrunkToLine float64 `json:"trunk_to_line"`
	LineToTrunk float64 `json:"line_to_trunk"`
	Total       float64 `json:"total"`
}

type dirReport struct {
	Sent       uint64  `json:"sent"`
	Received   uint64  `json:"received"`
	Duplicates uint64  `json:"duplicates"`
	LossPct    float64 `json:"loss_pct"`
}

type latencyReport struct {
	P50     float64 `json:"p50"`
	P99     float64 `json:"p99"`
	P999    float64 `json:"p999"`
	Max     float64 `json:"max"`
	Samples uint64  `json:"samples"`
}

func newLatencyReport(h *latencyHist) latencyReport {
	return latencyReport{P50: h.quantile(0.5), P99: h.quantile(0.99), P999: h.quantile(0.999), Max: h.maxUs(), Samples: h.n}
}

// switchReport is the switch over the window; a nil figure could not be measured
// (allocs_per_packet is null when the switch has no relayed-packets metric).
type switchReport struct {
	PID             int      `json:"pid,omitempty"`
	CPUS            *float64 `json:"cpu_s"`            // process_cpu_s + kernel_cpu_s
	ProcessCPUS     *float64 `json:"process_cpu_s"`    // the switch's process (/proc/PID/stat)
	KernelCPUS      *float64 `json:"kernel_cpu_s"`     // its kernel path's program, where it has one
	CPUPctPerCall   *float64 `json:"cpu_pct_per_call"` // % of one core per call, of cpu_s
	Mallocs         *float64 `json:"mallocs"`          // go_memstats_mallocs_total over the window
	ScrapeMallocs   *float64 `json:"scrape_mallocs"`   // of which about one /metrics scrape (the generator's own), measured at the window's start
	RelayedPackets  *float64 `json:"relayed_packets"`
	AllocsPerPacket *float64 `json:"allocs_per_packet"` // (mallocs - scrape_mallocs) / relayed_packets
	Errors          []string `json:"errors,omitempty"`
}

// run builds a generator, runs it and reports; the report is partial when err is not nil.
func run(ctx context.Context, cfg config, log *slog.Logger) (*report, error) {
	cpu0 := cputime.Process()
	g, err := newGen(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	rep := &report{}
	err = g.run(ctx, rep)
	g.close()
	rep.GeneratorCPUS = (cputime.Process() - cpu0).Seconds()
	if err != nil {
		rep.Error = err.Error()
	}
	return rep, err
}

func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "calls %d: up %d, failed %d %v, dropped %d, bye failed %d; setup p50 %.1f ms p99 %.1f ms\n",
		r.Calls, r.CallsUp, r.CallsFailed, r.Failures, r.CallsDropped, r.ByeFailed, r.SetupMs.P50, r.SetupMs.P99)
	fmt.Fprintf(w, "window %.1f s: sent %d, received %d, loss %.4f %% (trunk→line %.4f %%, line→trunk %.4f %%), %d streams with loss (worst %.2f %%), duplicates %d\n",
		r.DurationS, r.PacketsSent, r.PacketsReceived, r.LossPct.Total, r.LossPct.TrunkToLine, r.LossPct.LineToTrunk,
		r.StreamsWithLoss, r.WorstStreamLossPct, r.PacketsDuplicate)
	fmt.Fprintf(w, "latency µs: p50 %.0f, p99 %.0f, p99.9 %.0f, max %.0f (%d samples)\n",
		r.LatencyUs.P50, r.LatencyUs.P99, r.LatencyUs.P999, r.LatencyUs.Max, r.LatencyUs.Samples)
	fmt.Fprintf(w, "generator read delay µs (not in the latency): p50 %.0f, p99 %.0f, p99.9 %.0f, max %.0f\n",
		r.ReadDelayUs.P50, r.ReadDelayUs.P99, r.ReadDelayUs.P999, r.ReadDelayUs.Max)
	fmt.Fprintf(w, "packets: foreign %d, misrouted %d, early %d, malformed %d, send errors %d; sender late steps %d (max %.0f µs)\n",
		r.ForeignPackets, r.MisroutedPackets, r.EarlyPackets, r.MalformedPackets, r.SendErrors, r.SenderLateSteps, r.SenderLateMaxUs)
	if r.GeneratorRealtime != nil && !*r.GeneratorRealtime {
		fmt.Fprintf(w, "generator: no real-time priority: %s\n", r.GeneratorRealtimeErr)
	}
	fmt.Fprintf(w, "generator CPU: %.2f s in all, %.2f s in the window (%.4f %% of a core per call); other processes %.2f s in the window; stolen by the hypervisor %.2f s\n",
		r.GeneratorCPUS, r.GeneratorWindowCPUS, r.GeneratorCPUPctPerCall, r.OtherWindowCPUS, r.StolenWindowCPUS)
	if s := r.Switch; s != nil {
		fmt.Fprintf(w, "switch: CPU %s s (%s %% of a core per call; process %s s, kernel path %s s), mallocs %s (one /metrics scrape %s), relayed %s, allocs/packet %s",
			num(s.CPUS, 2), num(s.CPUPctPerCall, 4), num(s.ProcessCPUS, 2), num(s.KernelCPUS, 3), num(s.Mallocs, 0), num(s.ScrapeMallocs, 0), num(s.RelayedPackets, 0), num(s.AllocsPerPacket, 4))
		if len(s.Errors) > 0 {
			fmt.Fprintf(w, " (errors: %s)", strings.Join(s.Errors, "; "))
		}
		fmt.Fprintln(w)
	}
	if r.Error != "" {
		fmt.Fprintf(w, "error: %s\n", r.Error)
	}
}

func num(v *float64, prec int) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.*f", prec, *v)
}
