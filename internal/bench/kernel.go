package bench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// kernelCounters are the system-wide TCP counters whose change during a
// run a summary shows: they reveal what the generator cannot see, such as
// an accept queue that overflowed (the SYNs are dropped and retried, and
// the load looks merely slow) or connections the kernel aborted.
var kernelCounters = []string{
	"TcpExt.ListenOverflows",
	"TcpExt.ListenDrops",
	"Tcp.RetransSegs",
	"Tcp.OutRsts",
	"Tcp.AttemptFails",
	"Tcp.EstabResets",
	"TcpExt.TCPAbortOnData",
	"TcpExt.TCPAbortOnClose",
	"TcpExt.TCPAbortOnMemory",
	"TcpExt.TCPAbortOnTimeout",
	"TcpExt.TCPAbortOnLinger",
	"TcpExt.TCPAbortFailed",
}

// parseProcNet reads the "Name: field field ..." / "Name: value value ..."
// line pairs of /proc/net/snmp and /proc/net/netstat into a map keyed
// "Name.field".
func parseProcNet(r io.Reader, into map[string]int64) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var header []string
	var prefix string
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		name := strings.TrimSuffix(f[0], ":")
		if header == nil || name != prefix {
			header, prefix = f[1:], name
			continue
		}
		if len(f)-1 != len(header) {
			return fmt.Errorf("%s: %d values for %d names", name, len(f)-1, len(header))
		}
		for i, v := range f[1:] {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return fmt.Errorf("%s.%s: %q is not a number", name, header[i], v)
			}
			into[name+"."+header[i]] = n
		}
		header = nil
	}
	return sc.Err()
}

// readKernel reads the TCP counters, or returns nil where /proc/net is not
// there (other systems): the summary then has no kernel line.
func readKernel() map[string]int64 {
	m := map[string]int64{}
	for _, name := range []string{"/proc/net/snmp", "/proc/net/netstat"} {
		f, err := os.Open(name)
		if err != nil {
			return nil
		}
		err = parseProcNet(f, m)
		f.Close()
		if err != nil {
			return nil
		}
	}
	return m
}

// kernelDelta returns after - before for kernelCounters.
func kernelDelta(before, after map[string]int64) map[string]int64 {
	if before == nil || after == nil {
		return nil
	}
	d := make(map[string]int64, len(kernelCounters))
	for _, k := range kernelCounters {
		if _, ok := after[k]; ok {
			d[strings.SplitN(k, ".", 2)[1]] = after[k] - before[k]
		}
	}
	return d
}

// rssKiB reads a process's resident memory from /proc/PID/status.
func rssKiB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}
