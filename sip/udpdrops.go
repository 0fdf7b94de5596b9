package sip

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// udpDrops reads the kernel's drop counter of the UDP socket bound to port from
// /proc/net/udp (and udp6): datagrams lost because the receive buffer was full. It returns
// 0 where /proc is not available.
func udpDrops(port uint16) uint64 {
	var total uint64
	want := fmt.Sprintf(":%04X", port)
	for _, f := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		file, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(file)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			// sl local_address rem_address st tx:rx tr:tm retrnsmt uid timeout inode ref pointer drops
			if len(fields) < 13 || !strings.HasSuffix(fields[1], want) {
				continue
			}
			if n, err := strconv.ParseUint(fields[12], 10, 64); err == nil {
				total += n
			}
		}
		file.Close()
	}
	return total
}

// dropsCollector exports the switch socket's receive drops.
func (s *Switch) dropsCollector() prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "trackline_sip_udp_receive_drops_total",
		Help: "SIP datagrams the kernel dropped because the switch's UDP receive buffer was full.",
	}, func() float64 {
		if !s.addr.IsValid() {
			return 0
		}
		return float64(udpDrops(s.addr.Port()))
	})
}
