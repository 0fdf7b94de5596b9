// Command trackline-mediaload is the load generator of `make bench-media`: one process that
// is both the trunk (a SIP UAC that places calls to the switch) and the business line (a SIP
// UAS that the switch rings), with RTP on both sides of every call, all on loopback.
//
// Each call: the trunk sends an INVITE offering PCMU/0 and telephone-event/101 on an RTP port
// of its own, from the caller +316 followed by the call index in 8 digits; the switch rings
// the line, which finds the call by those digits and answers 200 with an RTP port of its
// own. Once a side knows the other side's address (the trunk from the switch's 200, the line
// from the INVITE it received) it sends 20 ms PCMU packets there: 160-byte payload (a 1 kHz
// tone), PT 0, its own SSRC, seq += 1, timestamp += 160 (RFC 3550 §5.1, RFC 3551 §4.5.14).
//
// What it owns:
//   - The media loops (-loops, default 1), each on a locked OS thread, owning a share of the
//     streams (one stream is one direction of one call). A loop walks each 20 ms slot in
//     -tick steps: it sleeps until the step with an absolute clock_nanosleep on
//     CLOCK_MONOTONIC (a late step never causes a drift), sends the packet of each stream
//     whose index falls in that step, so the packets of all calls are spread evenly over
//     the slot, then reads what its sockets hold: epoll_wait without waiting on its own
//     level-triggered set of raw non-blocking sockets (golang.org/x/sys/unix), one recvmsg
//     per ready socket. sendto, recvmsg and the zero-timeout epoll_pwait are raw system
//     calls (none of them blocks), and nothing on this path allocates.
//   - Measuring. Every payload starts with a stamp: a magic value, the call index, the
//     direction, the 20 ms slot the packet belongs to and its send time (CLOCK_MONOTONIC
//     ns, taken just before sendto). The receiver counts packets without the magic as
//     foreign (the switch's prompts or ringback), and its own packets of another call or
//     direction as misrouted. The slot acts as a 32-bit sequence number that the switch
//     cannot rewrite (a relay may renumber the RTP header after playing its own prompt):
//     a bitmap per stream over the steady window gives the distinct packets received and
//     the duplicates; the loops count what they sent in the window; loss is the
//     difference, per call and direction. The latency is the kernel's receive time of the
//     packet (SO_TIMESTAMPNS, CLOCK_REALTIME, converted to CLOCK_MONOTONIC with an offset
//     taken at each read pass) minus its send time, so it does not include the time the
//     packet waited for the loop to read it (reported apart as the read delay). It goes
//     into a fixed histogram (1 µs buckets below 2 ms, 10 µs below 20 ms, 1 ms below 1 s).
//   - The window. Measuring starts -settle after every call is up and lasts -duration; the
//     loops stop sending at its end and keep reading for -grace after they sent its last
//     slot. Then the trunk hangs every call up with BYE, paced at -setup-rate.
//   - With -rt-priority the loops' threads run under SCHED_FIFO. Beside a switch whose
//     real-time packet loops take the same cores, an ordinary thread falls behind by up to
//     seconds and then sends what is due in one burst, which phones on other machines
//     never do; give the loops a priority below the switch's.
//   - With -switch-pid and -switch-metrics it samples the switch at the window's two ends
//     (the end once every loop has sent the window's last slot):
//     utime+stime from /proc/PID/stat and two counters from its /metrics
//     (go_memstats_mallocs_total, trackline_rtp_relayed_packets_total), so that the
//     switch's CPU and allocations cover exactly the steady window. The window's mallocs
//     contain about one scrape of /metrics, which allocates in the switch (about 1,600
//     times): at the start it scrapes twice back to back, and allocations per packet leave
//     out what the two differ by. It also reads the CPU the hypervisor took from the
//     machine's CPUs in the window (steal, /proc/stat).
//
// What it does not do: RTCP, DTMF, codecs other than PCMU, re-INVITEs (refused with 488),
// TCP, IPv6. Every address it sends to must be an IPv4 loopback address: it refuses others.
//
// Caveats:
//   - On loopback the kernel's delivery of a datagram runs in the sender's system call or
//     in a later one of the same thread (softirq), so CPU figures split the kernel's work
//     between the generator and the switch roughly by who sent what.
//   - The loops send within one tick of the scheduled step while the machine has CPU to
//     spare; sender_late_steps counts the steps in the window that began more than a tick
//     late.
//   - Packets of a window slot that arrive more than -grace after the window's last send
//     count as lost.
//   - SIP (sipgo) allocates per call, so the generator's garbage collector runs during the
//     ramp and the hang-up, not in the window.
package main
