package main

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// lossyRun is the shell script TestWatchLossyLink runs in a network
// namespace of its own: its loopback gets a 1500-byte MTU and a token
// bucket (tc tbf) of 2 Mbit/s with room for 8,000 bytes, which drops
// what a sender pushes past it. A client sends 200,000 bytes to a
// discarding server through it while watch captures. Nothing else sees
// that loopback. Waiting for a line polls the file it goes to, bounded.
const lossyRun = `set -eu
bin=$1; dir=$2; port=7100
ip link set lo up mtu 1500
tc qdisc add dev lo root tbf rate 2mbit burst 4000 limit 8000
waitline() { # FILE TEXT: wait up to 10 s for TEXT in FILE
	i=0
	until grep -q "$2" "$1"; do
		i=$((i+1)); [ $i -lt 1000 ] || { echo "no '$2' in $1" >&2; exit 1; }
		sleep 0.01
	done
}
"$bin" serve --port $port --host 127.0.0.1 --mode discard --quiet >"$dir/serve.out" 2>&1 &
srv=$!
waitline "$dir/serve.out" "listen on port"
"$bin" watch --pcap "$dir/lossy.pcap" $port >"$dir/watch.out" 2>"$dir/watch.err" &
w=$!
waitline "$dir/watch.err" "watching TCP port"
head -c 200000 /dev/zero >"$dir/payload"
"$bin" connect --stdin --timeout 30s 127.0.0.1:$port <"$dir/payload" >/dev/null
kill -INT $w
wait $w
kill $srv
`

// Retransmissions and duplicate ACKs from a real lossy link: the
// segments watch marks are the very ones Wireshark's analysis marks
// (tshark's tcp.analysis.retransmission and tcp.analysis.duplicate_ack),
// on the same pcap.
func TestWatchLossyLink(t *testing.T) {
	needCapture(t)
	unshare := needPeer(t, "unshare")
	needPeer(t, "ip")
	needPeer(t, "tc")
	dir := t.TempDir()
	script := filepath.Join(dir, "lossy.sh")
	if err := os.WriteFile(script, []byte(lossyRun), 0o755); err != nil {
		t.Fatal(err)
	}
	p := start(t, unshare, "--net", "sh", script, tcpkitBin, dir)
	if code := p.wait(t, 12*waitFor); code != 0 {
		out, _ := os.ReadFile(filepath.Join(dir, "watch.err"))
		t.Fatalf("the lossy run in its namespace: exit %d, stderr %q; watch: %s", code, p.stderr.all(), out)
	}
	pcap := filepath.Join(dir, "lossy.pcap")

	code, ladder, _ := runTcpkit(t, "watch", "--read", pcap)
	checkExit(t, "watch --read", code, exitOK)
	var retrans, dups []int // segment numbers, from 1 as tshark counts frames
	for i, r := range rungs(t, ladder) {
		if strings.Contains(r.notes, "retransmission") {
			retrans = append(retrans, i+1)
		}
		if strings.Contains(r.notes, "duplicate ACK #") {
			dups = append(dups, i+1)
		}
	}
	frames := func(filter string) []int {
		_, out, _ := runTcpkitPeer(t, tshark(t), "-r", pcap, "-Y", filter, "-T", "fields", "-e", "frame.number")
		var n []int
		for _, l := range out {
			v, err := strconv.Atoi(l)
			if err != nil {
				t.Fatalf("tshark printed %q for a frame number", l)
			}
			n = append(n, v)
		}
		return n
	}
	if len(retrans) == 0 || len(dups) == 0 {
		t.Errorf("the lossy link gave %d retransmissions and %d duplicate ACKs; the test needs some of each", len(retrans), len(dups))
	}
	if want := frames("tcp.analysis.retransmission"); !slices.Equal(retrans, want) {
		t.Errorf("retransmissions: watch marks segments %v, tshark %v", retrans, want)
	}
	if want := frames("tcp.analysis.duplicate_ack"); !slices.Equal(dups, want) {
		t.Errorf("duplicate ACKs: watch marks segments %v, tshark %v", dups, want)
	}
}
