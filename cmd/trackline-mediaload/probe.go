package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of utime and stime in /proc/PID/stat (USER_HZ, 100 on every Linux
// architecture Go supports).
const userHZ = 100

// procCPU is the user+system CPU that process pid has used (proc(5): fields 14 and 15 of
// /proc/PID/stat), with a resolution of 10 ms.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("proc stat: no command")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, errors.New("proc stat: too few fields")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("proc stat: %w", err)
	}
	return time.Duration(ut+st) * time.Second / userHZ, nil
}

// procTime is one process's start time and the CPU it and its reaped children have used,
// in clock ticks (proc(5): fields 22, and 14 to 17 of /proc/PID/stat).
type procTime struct{ start, cpu int64 }

// allProcs reads procTime for every process. The kernel's machine-wide /proc/stat is no
// substitute: it samples at the tick, and a process that sleeps until the next millisecond
// (as the generator's loops do) is then mostly seen idle.
func allProcs() map[int]procTime {
	out := make(map[int]procTime)
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 20 {
			continue
		}
		var t procTime
		for _, i := range []int{11, 12, 13, 14} {
			v, _ := strconv.ParseInt(f[i], 10, 64)
			t.cpu += v
		}
		t.start, _ = strconv.ParseInt(f[19], 10, 64)
		out[pid] = t
	}
	return out
}

// stolenTicks is the CPU time the hypervisor has taken from this machine's virtual CPUs since
// boot, in clock ticks: steal, the eighth value of the cpu line of /proc/stat (proc(5)). It
// is 0 where the kernel does not account it. A window with steal ran on a machine that was
// not all its own, and its latency and CPU figures say so.
func stolenTicks() int64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	return parseSteal(string(b))
}

// parseSteal reads steal from the text of /proc/stat: 0 when its first line is not the
// machine-wide cpu line or is too short to have steal.
func parseSteal(stat string) int64 {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	v, err := strconv.ParseInt(f[8], 10, 64)
	if err != nil || v < 0 {
		return 0
	}
	return v
}

// otherCPU is the CPU that processes other than those in exclude used between two
// readings of allProcs: a process in both counts its growth, one started since counts in
// full, and one that exited in between counts in its parent's children time once reaped.
func otherCPU(a, b map[int]procTime, exclude ...int) time.Duration {
	var ticks int64
	for pid, tb := range b {
		if slices.Contains(exclude, pid) {
			continue
		}
		if ta, ok := a[pid]; ok && ta.start == tb.start {
			ticks += tb.cpu - ta.cpu
		} else {
			ticks += tb.cpu
		}
	}
	return time.Duration(ticks) * time.Second / userHZ
}

// scrapeMetrics fetches a Prometheus text exposition and returns, for each of names found,
// the sum of its samples over all label sets. Names absent from the page are absent from
// the map.
func scrapeMetrics(ctx context.Context, url string, names ...string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics: %s", res.Status)
	}
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	out := make(map[string]float64)
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		end := strings.IndexAny(line, "{ ")
		if end < 0 || !want[line[:end]] {
			continue
		}
		rest := line[end:]
		if rest[0] == '{' {
			j := strings.LastIndexByte(rest, '}')
			if j < 0 {
				continue
			}
			rest = rest[j+1:]
		}
		f := strings.Fields(rest) // value [timestamp]
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		out[line[:end]] += v
	}
	return out, sc.Err()
}
