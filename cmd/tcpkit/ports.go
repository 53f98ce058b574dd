package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"text/tabwriter"

	"tcpkit/internal/ports"
)

const portsUsage = `Usage: tcpkit ports [flags] [PORT]

List the TCP listeners and connections of this machine, IPv4 and IPv6,
with the process that holds each: the seed tutorial's
"sudo lsof -i -P | grep :$PORT" step. With PORT, only the sockets whose
local or remote port is PORT. Listeners come first, then by local port.

Examples:
  tcpkit ports                  every TCP socket
  tcpkit ports 5000             who listens on 5000, and its connections
  tcpkit ports --listen         listeners only
  sudo tcpkit ports 5000        other users' processes too
  tcpkit ports --json 5000 | jq '.[] | select(.state == "LISTEN") | .pid'

Columns: SEND-Q is bytes sent and not yet acknowledged, RECV-Q bytes
received and not yet read (for a listener, connections waiting for
accept). PID/COMMAND is "-" where no process holds the socket (TIME_WAIT)
or where its owner is another user's process and this is not root.

--json prints an array of objects with the fields proto, local, remote,
state, send_q, recv_q, pid, command, inode and uid; pid and command are
null where the owner is unknown.

Linux only: it reads /proc/net/tcp, /proc/net/tcp6 and /proc/PID/fd.

Flags:
`

func portsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("ports", portsUsage, stdout)
	listen := fs.Bool("listen", false, "show listeners only")
	asJSON := fs.Bool("json", false, "print a JSON array, for scripts, instead of a table")
	pos, err := fs.parse(args, stderr)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) > 1 {
		return usageError(stderr, "ports", "unexpected argument %q: give at most one PORT", pos[1])
	}
	opts := ports.Options{Listen: *listen}
	if len(pos) == 1 {
		n, err := strconv.Atoi(pos[0])
		if err != nil {
			return usageError(stderr, "ports", "PORT %q is not a number: give a port from 1 to 65535", pos[0])
		}
		if n < 1 || n > 65535 {
			return usageError(stderr, "ports", "port %d is out of range: use 1 to 65535", n)
		}
		opts.Port = uint16(n)
	}

	res, err := ports.List(opts)
	if errors.Is(err, ports.ErrUnsupported) {
		fmt.Fprintf(stderr, "tcpkit ports: not supported on %s: it reads Linux's /proc; try 'lsof -iTCP -P' there\n", runtime.GOOS)
		return exitFail
	}
	if err != nil {
		fmt.Fprintf(stderr, "tcpkit ports: cannot list sockets: %v\n", err)
		return exitFail
	}
	if *asJSON {
		err = writePortsJSON(stdout, res.Sockets)
	} else {
		err = writePortsTable(stdout, res.Sockets)
	}
	if err != nil {
		fmt.Fprintf(stderr, "tcpkit ports: cannot write the list: %v\n", err)
		return exitFail
	}
	if note := hiddenNote(res, os.Geteuid()); note != "" {
		fmt.Fprintln(stderr, note)
	}
	return exitOK
}

// hiddenNote tells a user other than root that the owners of some
// sockets were not shown, and how to see them; as root there is nothing
// more to see, so it says nothing.
func hiddenNote(res ports.Result, euid int) string {
	if euid == 0 || res.Hidden == 0 {
		return ""
	}
	s := "s belong"
	if res.Hidden == 1 {
		s = " belongs"
	}
	return fmt.Sprintf("tcpkit ports: note: %d socket%s to other users' processes, hidden from you (PID/COMMAND \"-\"); run with sudo to see them", res.Hidden, s)
}

func writePortsTable(w io.Writer, socks []ports.Socket) error {
	// tabwriter writes each cell on its own: buffer, or 10,000 rows make
	// 150,000 write calls.
	bw := bufio.NewWriterSize(w, 64<<10)
	tw := tabwriter.NewWriter(bw, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "PROTO\tLOCAL\tREMOTE\tSTATE\tSEND-Q\tRECV-Q\tPID/COMMAND")
	for _, s := range socks {
		owner := "-"
		if s.PID != 0 {
			owner = strconv.Itoa(s.PID) + "/" + escapeString(s.Command) // any user names their processes
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%d\t%d\t%s\n", s.Proto, s.Local, remoteText(s.Remote), s.State, s.SendQ, s.RecvQ, owner)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return bw.Flush()
}

// remoteText shows a listener's remote end, port 0, as netstat does:
// "0.0.0.0:*", "[::]:*".
func remoteText(ap netip.AddrPort) string {
	if ap.Port() != 0 {
		return ap.String()
	}
	if ap.Addr().Is6() {
		return "[" + ap.Addr().String() + "]:*"
	}
	return ap.Addr().String() + ":*"
}

// portJSON is one socket in --json output. The field names are part of
// the command's interface: scripts depend on them, so never rename one.
type portJSON struct {
	Proto   string  `json:"proto"`
	Local   string  `json:"local"`
	Remote  string  `json:"remote"`
	State   string  `json:"state"`
	SendQ   uint32  `json:"send_q"`
	RecvQ   uint32  `json:"recv_q"`
	PID     *int    `json:"pid"`     // null when unknown, so that no script runs "kill 0"
	Command *string `json:"command"` // null when unknown
	Inode   uint64  `json:"inode"`
	UID     uint32  `json:"uid"`
}

func writePortsJSON(w io.Writer, socks []ports.Socket) error {
	out := make([]portJSON, 0, len(socks)) // [] rather than null when empty
	for _, s := range socks {
		p := portJSON{
			Proto:  s.Proto,
			Local:  s.Local.String(),
			Remote: s.Remote.String(),
			State:  s.State.String(),
			SendQ:  s.SendQ,
			RecvQ:  s.RecvQ,
			Inode:  s.Inode,
			UID:    s.UID,
		}
		if s.PID != 0 {
			p.PID, p.Command = &s.PID, &s.Command
		}
		out = append(out, p)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// portHolder names the process listening on port, as "tcpkit (PID 123)",
// for the error of a busy port; "" when it cannot be told.
func portHolder(port int) string {
	if port <= 0 || port > 65535 {
		return ""
	}
	res, err := ports.List(ports.Options{Port: uint16(port), Listen: true})
	if err != nil {
		return ""
	}
	for _, s := range res.Sockets {
		if s.Local.Port() == uint16(port) && s.PID != 0 {
			return fmt.Sprintf("%s (PID %d)", escapeString(s.Command), s.PID)
		}
	}
	return ""
}
