package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// userHZ is the unit of /proc/stat: always 100 per second on Linux,
// whatever the kernel's tick rate.
const userHZ = 100

// cpuIdle reads one CPU's idle+iowait time from /proc/stat.
//
// The core's busy time over a window is the window less this. Summing
// the busy fields (user+nice+system+irq+softirq+steal) instead would
// undercount a core that goes idle often: the kernel charges those at
// each timer tick, and with the tick stopped while idle (NO_HZ) a short
// burst of work often sees no tick, while idle time is measured exactly.
// On a core kept busy the two agree; on one 85% busy the tick sum reads
// several points low, which would flatter a server that leaves its core
// idle.
func cpuIdle(cpu int) (uint64, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	prefix := []byte(fmt.Sprintf("cpu%d ", cpu))
	for line := range bytes.Lines(data) {
		if !bytes.HasPrefix(line, prefix) {
			continue
		}
		f := strings.Fields(string(line[len(prefix):]))
		if len(f) < 5 {
			return 0, fmt.Errorf("/proc/stat: short cpu%d line", cpu)
		}
		// user nice system idle iowait irq softirq steal guest guest_nice
		idle, err1 := strconv.ParseUint(f[3], 10, 64)
		iowait, err2 := strconv.ParseUint(f[4], 10, 64)
		if err1 != nil || err2 != nil {
			return 0, fmt.Errorf("/proc/stat: bad cpu%d line", cpu)
		}
		return idle + iowait, nil
	}
	return 0, fmt.Errorf("/proc/stat: no cpu%d line", cpu)
}

type cpuSample struct {
	t    time.Time
	idle uint64 // the server core's idle+iowait, from /proc/stat
	own  uint64 // the server process's utime+stime
}

// span is what the counters moved by over a window, in jiffies.
type span struct {
	idle, own float64
}

// sampler reads the server core's times from /proc/stat every period,
// and the server's VmRSS, so that the busy time over the generator's own
// measured window (which it reports afterwards) can be interpolated.
type sampler struct {
	cpu, pid int
	stopc    chan struct{}
	done     chan struct{}

	mu      sync.Mutex
	samples []cpuSample // guarded by mu
	maxRSS  int64       // KiB; guarded by mu
	err     error       // first read error; guarded by mu
}

func startSampler(cpu, pid int, period time.Duration) *sampler {
	s := &sampler{cpu: cpu, pid: pid, stopc: make(chan struct{}), done: make(chan struct{})}
	s.sample()
	go func() {
		defer close(s.done)
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			select {
			case <-s.stopc:
				s.sample()
				return
			case <-tick.C:
				s.sample()
			}
		}
	}()
	return s
}

func (s *sampler) sample() {
	idle, err := cpuIdle(s.cpu)
	t := time.Now()
	var rss int64
	var own uint64
	if err == nil && s.pid > 0 {
		// The process may be gone at the very end: keep the zeros.
		own, _ = procCPU(s.pid)
		rss, _ = vmRSSKiB(s.pid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if s.err == nil {
			s.err = err
		}
		return
	}
	s.samples = append(s.samples, cpuSample{t, idle, own})
	s.maxRSS = max(s.maxRSS, rss)
}

func (s *sampler) stop() {
	close(s.stopc)
	<-s.done
}

// between returns how far the counters moved from a to b, each end
// linearly interpolated between the two samples around it.
func (s *sampler) between(a, b time.Time) (span, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return span{}, s.err
	}
	if len(s.samples) < 2 {
		return span{}, fmt.Errorf("too few /proc/stat samples")
	}
	first, last := s.samples[0].t, s.samples[len(s.samples)-1].t
	if a.Before(first.Add(-50*time.Millisecond)) || b.After(last.Add(50*time.Millisecond)) {
		return span{}, fmt.Errorf("window %s..%s outside the sampled %s..%s",
			a.Format(time.StampMicro), b.Format(time.StampMicro),
			first.Format(time.StampMicro), last.Format(time.StampMicro))
	}
	x, y := s.atLocked(a), s.atLocked(b)
	return span{y.idle - x.idle, y.own - x.own}, nil
}

// atLocked interpolates the counters at t.
func (s *sampler) atLocked(t time.Time) span {
	ss := s.samples
	i := 1
	for i < len(ss)-1 && ss[i].t.Before(t) {
		i++
	}
	p, q := ss[i-1], ss[i]
	f := 0.0
	if span := q.t.Sub(p.t); span > 0 {
		f = float64(t.Sub(p.t)) / float64(span)
	}
	f = min(max(f, 0), 1)
	lerp := func(x, y uint64) float64 { return float64(x) + f*(float64(y)-float64(x)) }
	return span{lerp(p.idle, q.idle), lerp(p.own, q.own)}
}

func (s *sampler) peakRSS() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxRSS
}

// procCPU reads a process's utime+stime, in jiffies, from /proc/PID/stat.
func procCPU(pid int) (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// After "pid (comm) ", the fields from state on; comm may hold spaces.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no comm", pid)
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseUint(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime or stime", pid)
	}
	return utime + stime, nil
}

// vmRSSKiB reads a process's resident set size from /proc/PID/status.
func vmRSSKiB(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// tcpOutRsts reads the count of RSTs sent (Tcp OutRsts in /proc/net/snmp),
// for this network namespace: on a quiet machine, the run's own.
func tcpOutRsts() (int64, error) {
	data, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return 0, err
	}
	var names []string
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Tcp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == "OutRsts" && i < len(f) {
				return strconv.ParseInt(f[i], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no Tcp OutRsts in /proc/net/snmp")
}
