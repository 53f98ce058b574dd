package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"tcpkit/internal/watch"
)

const watchUsage = `Usage: tcpkit watch [flags] PORT
       tcpkit watch --read FILE [flags] [PORT]

Capture the TCP segments to and from PORT and draw each connection as a
ladder: the client on the left, the server on the right, one arrow per
segment with its flags, its sequence and acknowledgement numbers counted
from the connection's start, its payload and its time. In words: the
3-way handshake, the data, the 4-way close and who ends in TIME_WAIT,
resets, retransmissions, zero windows and duplicate ACKs. docs/watch.md
explains how to read it.

Live capture uses Linux's AF_PACKET and needs root or CAP_NET_RAW.
Ctrl-C (SIGINT) stops it and finishes the files.

Examples:
  sudo tcpkit watch 5000                      the seed's server, on loopback
  sudo tcpkit watch --pcap run.pcap 5000      keep the segments for tshark or Wireshark
  tcpkit watch --read run.pcap                draw a capture of tcpdump, tshark or watch
  tcpkit watch --read run.pcap --html run.html    a page with a ladder per connection

Flags:
`

func watchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("watch", watchUsage, stdout)
	iface := fs.String("iface", "lo", "capture on this network `interface`")
	pcapName := fs.String("pcap", "", "also write the segments drawn to this pcap `file` (tshark and Wireshark read it)")
	readName := fs.String("read", "", "draw the segments of this pcap or pcapng `file` (tcpdump -w, tshark -w) instead of capturing")
	htmlName := fs.String("html", "", "at the end, write a page with a ladder per connection to this `file`")
	color := fs.String("color", "auto", "colour each connection's lines: auto (on a terminal), always or never")
	pos, err := fs.parse(args, stderr)
	if err != nil {
		return flagExit(err)
	}
	failf := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "tcpkit watch: "+format+"\n", a...)
		return exitFail
	}

	var port uint16
	switch {
	case len(pos) > 1:
		return usageError(stderr, "watch", "unexpected argument %q: give one PORT", pos[1])
	case len(pos) == 1:
		n, err := strconv.Atoi(pos[0])
		if err != nil || n < 1 || n > 65535 {
			return usageError(stderr, "watch", "PORT %q is not a port: give a number from 1 to 65535", pos[0])
		}
		port = uint16(n)
	case *readName == "":
		return usageError(stderr, "watch", "give the server's PORT to watch, as in 'tcpkit watch 5000'")
	}
	useColor := false
	switch *color {
	case "auto":
		useColor = isTerminal(stdout) && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
	case "always":
		useColor = true
	case "never":
	default:
		return usageError(stderr, "watch", "--color %q: use auto, always or never", *color)
	}
	if *readName != "" && *iface != "lo" {
		return usageError(stderr, "watch", "--read draws a file, --iface captures: give one of them")
	}

	var src watch.Source
	var live *watch.Live
	if *readName != "" {
		f, err := os.Open(*readName)
		if err != nil {
			return failf("cannot read %s: %v", *readName, pathErr(err))
		}
		defer f.Close()
		if src, err = watch.OpenFile(f); err != nil {
			if errors.Is(err, watch.ErrLinkType) {
				link := strings.TrimPrefix(err.Error(), watch.ErrLinkType.Error()+" ")
				return failf("%s holds frames of link type %s, which watch cannot decode: capture on an Ethernet or loopback interface, or with tshark -i any", *readName, link)
			}
			return failf("%s is not a pcap or pcapng capture (as tcpdump -w and tshark -w write)", *readName)
		}
	} else {
		live, err = watch.OpenLive(*iface, port)
		switch {
		case errors.Is(err, watch.ErrPermission):
			bin, _ := os.Executable()
			return failf("capturing packets needs root or CAP_NET_RAW: run it with sudo, or allow it once with 'sudo setcap cap_net_raw+ep %s'", bin)
		case errors.Is(err, watch.ErrNoInterface):
			return failf("there is no network interface %q: 'ip link' lists them", *iface)
		case errors.Is(err, watch.ErrUnsupported):
			return failf("live capture works on Linux only; --read draws a capture made elsewhere")
		case err != nil:
			return failf("cannot capture on %s: %s", *iface, plain(err))
		}
		src = live
	}

	// A closed standard output (tcpkit watch 5000 | head) ends the
	// capture as Ctrl-C does, files finished, rather than SIGPIPE killing
	// the process with them half written.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	signal.Ignore(syscall.SIGPIPE)
	out := &stopOnError{w: stdout, stop: cancel}
	opts := watch.Options{Port: port, Out: out, Color: useColor}
	var files []*os.File
	for _, out := range []struct {
		name string
		w    *io.Writer
	}{{*pcapName, &opts.Pcap}, {*htmlName, &opts.HTML}} {
		if out.name == "" {
			continue
		}
		f, err := os.Create(out.name)
		if err != nil {
			src.Close()
			return failf("cannot create %s: %v", out.name, pathErr(err))
		}
		defer f.Close()
		files = append(files, f)
		*out.w = f
	}

	if live != nil {
		fmt.Fprintf(stderr, "watching TCP port %d on %s (Ctrl-C stops)\n", port, *iface)
	}
	sum, err := watch.Run(ctx, src, opts)
	for _, f := range files {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	if out.failed.Load() {
		fmt.Fprintln(stderr, "standard output was closed: stopped")
	}
	fmt.Fprintf(stderr, "%s in %s\n", plural(sum.Segments, "segment"), plural(sum.Conns, "connection"))
	if sum.Dropped > 0 {
		fmt.Fprintf(stderr, "%d ladder lines were not drawn: the output was too slow%s\n", sum.Dropped, pcapHas(*pcapName))
	}
	if sum.OutStuck {
		fmt.Fprintf(stderr, "the output did not take the last lines in time; stopped anyway\n")
	}
	if live != nil {
		if d := live.Drops(); d > 0 {
			fmt.Fprintf(stderr, "the kernel dropped %d packets that watch did not read in time: they are in no output\n", d)
		}
	}
	if sum.HTMLDropped > 0 {
		fmt.Fprintf(stderr, "%s holds the first %d segments, not the %d after them%s\n", *htmlName, watch.MaxHTMLSteps, sum.HTMLDropped, pcapHas(*pcapName))
	}
	switch {
	case errors.Is(err, watch.ErrCutShort):
		return failf("%s ends in the middle of a packet (was the capture cut short?): drew the %d segments before it", *readName, sum.Segments)
	case errors.Is(err, watch.ErrNotCapture):
		what := strings.TrimPrefix(err.Error(), watch.ErrNotCapture.Error()+": ")
		return failf("%s is damaged after its first %d segments (%s): drew those", *readName, sum.Segments, what)
	case err != nil:
		return failf("stopped after %d segments: %s", sum.Segments, plain(pathErr(err)))
	}
	return exitOK
}

// plain is err's text without the package's "watch: " in front.
func plain(err error) string { return strings.TrimPrefix(err.Error(), "watch: ") }

// stopOnError passes writes on, and calls stop at the first that fails.
type stopOnError struct {
	w      io.Writer
	stop   func()
	failed atomic.Bool
}

func (s *stopOnError) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	if err != nil && !s.failed.Swap(true) {
		s.stop()
	}
	return n, err
}

// pcapHas says that the pcap file, if any, has every segment.
func pcapHas(name string) string {
	if name == "" {
		return ""
	}
	return " (" + name + " has every segment)"
}

// pathErr is err without the operation and path Go puts in front of it.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
