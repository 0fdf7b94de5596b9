# Helpers for the scripts that run sipp or the switch (call.sh, bench-sip.sh, bench-flood.sh,
# bench-media.sh). Source it from the module root: `. scripts/sipp.sh`. Scenarios are in
# e2e/testdata/sipp (the same ones the e2e tests use). Nothing here kills a process it did
# not start: every helper takes a PID.

SIPP_SCENARIOS=e2e/testdata/sipp
CLK_TCK=${CLK_TCK:-$(getconf CLK_TCK)} # clock ticks a second, for cpu_ticks and sample_cpu

# udp_port_bound PORT [IP]: whether a UDP socket is bound to PORT (on IP, default any
# loopback or wildcard address), from /proc/net/udp.
udp_port_bound() {
	local hex
	hex=$(printf '%04X' "$1")
	awk -v p=":$hex" 'NR > 1 && substr($2, length($2) - 4) == p {found = 1} END {exit !found}' /proc/net/udp
}

# free_udp_port: a random UDP port in 20000-59999 that no socket holds now.
free_udp_port() {
	local p i
	for ((i = 0; i < 200; i++)); do
		p=$((20000 + RANDOM % 40000))
		if ! udp_port_bound "$p"; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# udp_drops PORT: the drops column of /proc/net/udp for the socket bound to PORT (0 if none).
udp_drops() {
	local hex
	hex=$(printf '%04X' "$1")
	awk -v p=":$hex" 'NR > 1 && substr($2, length($2) - 4) == p {d += $NF} END {print d + 0}' /proc/net/udp
}

# sample_rxq PORT FILE SECONDS: every 0.1 s, the bytes waiting in the receive queue of the UDP
# socket bound to PORT (/proc/net/udp rx_queue, the kernel's accounting of the datagrams'
# buffers, not their payload), one a line; stops after SECONDS.
sample_rxq() {
	local hex end
	hex=$(printf '%04X' "$1")
	end=$((SECONDS + $3))
	while [ "$SECONDS" -lt "$end" ]; do
		awk -v p=":$hex" 'function hex(s,  i, n) {n = 0; for (i = 1; i <= length(s); i++) n = n * 16 + index("0123456789ABCDEF", toupper(substr(s, i, 1))) - 1; return n}
			NR > 1 && substr($2, length($2) - 4) == p {split($5, q, ":"); r += hex(q[2])} END {print r + 0}' /proc/net/udp >>"$2"
		sleep 0.1
	done
}

# hist_quantile FILE METRIC Q: the upper bound (le) of the bucket holding quantile Q (0..1)
# of the Prometheus histogram METRIC in the /metrics text FILE ("+Inf" past the last bound,
# n/a when the histogram is missing or empty).
hist_quantile() {
	awk -v m="$2" -v q="$3" 'index($1, m "_bucket{") == 1 {le = $1; sub(/.*le="/, "", le); sub(/".*/, "", le); n++; b[n] = le; c[n] = $2}
		index($1, m "_count") == 1 {t = $2}
		END {if (!t) {print "n/a"; exit} for (i = 1; i <= n; i++) if (c[i] >= q * t) {print b[i]; exit} print "n/a"}' "$1"
}

# udp_rcvbuf_errors: the machine's UDP RcvbufErrors counter (/proc/net/snmp).
udp_rcvbuf_errors() {
	awk '$1 == "Udp:" {if (!n) {for (i = 2; i <= NF; i++) col[$i] = i; n = 1} else {print $col["RcvbufErrors"]; exit}}' /proc/net/snmp
}

# wait_udp_bound PID PORT: waits (at most 5 s) until PORT is bound; fails if PID exits first.
wait_udp_bound() {
	local pid=$1 port=$2 i
	for ((i = 0; i < 50; i++)); do
		udp_port_bound "$port" && return 0
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# stop_pid PID [SECONDS]: SIGTERM, wait at most SECONDS (default 5), then SIGKILL; only the
# given PID.
stop_pid() {
	local pid=$1 secs=${2:-5} i
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < secs * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
}

# build_switch BIN: go build ./cmd/trackline into BIN when BIN is missing or older than a
# Go source it is built from.
build_switch() {
	local bin=$1
	if [ ! -x "$bin" ] || [ -n "$(find cmd sip pool store api configs media recordings -newer "$bin" -name '*.go' 2>/dev/null | head -1)" ]; then
		printf 'go build -o %s ./cmd/trackline\n' "$bin"
		go build -o "$bin" ./cmd/trackline
	fi
}

# tsv_median FILE KEY COLUMN: the median of COLUMN over FILE's tab-separated rows whose first
# field is KEY, ignoring n/a; n/a when there is none.
tsv_median() {
	awk -F'\t' -v n="$2" -v c="$3" '$1 == n && $c != "n/a" {v[++k] = $c + 0}
		END {
			if (!k) {print "n/a"; exit}
			for (i = 2; i <= k; i++) {x = v[i]; for (j = i - 1; j > 0 && v[j] > x; j--) v[j + 1] = v[j]; v[j + 1] = x}
			print (k % 2) ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2
		}' "$1"
}

# cpu_ticks PID: utime+stime (fields 14 and 15 of /proc/PID/stat), in clock ticks.
cpu_ticks() {
	local stat rest
	stat=$(<"/proc/$1/stat") || return 1
	rest=${stat##*) }
	read -ra f <<<"$rest"
	echo $((f[11] + f[12]))
}

# sample_cpu PID FILE SECONDS: every second, the CPU % (of one core) PID used in that second;
# stops when PID exits or after SECONDS samples.
sample_cpu() {
	local pid=$1 out=$2 n=$3 prev now i
	prev=$(cpu_ticks "$pid") || return 0
	for ((i = 0; i < n; i++)); do
		sleep 1
		now=$(cpu_ticks "$pid" 2>/dev/null) || return 0
		echo $(((now - prev) * 100 / CLK_TCK)) >>"$out"
		prev=$now
	done
}

# stat_field CSV NAME: NAME's value in the last line of a sipp statistics CSV.
stat_field() {
	awk -F';' -v k="$2" 'NR == 1 {for (i = 1; i <= NF; i++) if ($i == k) c = i; next} {v = $c} END {print (c && v != "") ? v + 0 : "n/a"}' "$1"
}

# percentile FILE P: the P-th percentile (nearest rank) of the numbers in FILE, one a line.
percentile() {
	sort -g "$1" | awk -v p="$2" '{v[NR] = $1} END {if (!NR) {print "n/a"; exit} r = int(NR * p / 100 + 0.999999); if (r < 1) r = 1; print v[r]}'
}
