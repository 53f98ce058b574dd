// Command tcpkit stands up a TCP server, pokes at one, and shows what the
// connection does. Run "tcpkit help" for the commands.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// Exit codes, the same for every command. README.md lists them too.
const (
	exitOK      = 0 // done: served until a signal, or the exchange went as asked
	exitFail    = 1 // could not start: cannot listen, cannot connect
	exitUsage   = 2 // a wrong flag or argument
	exitBroken  = 3 // the connection broke: a send failed (EPIPE, reset)
	exitTimeout = 4 // connect: the server was silent for --timeout
)

// A command runs one verb with its arguments and returns the exit code.
type command struct {
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
	summary string
}

var commands map[string]command

func init() { // in init: completion reads the table it is in
	commands = map[string]command{
		"serve":      {serveCmd, "listen for connections, print what arrives, reply (the seed's server)"},
		"cert":       {certCmd, "write a self-signed certificate and key for testing TLS locally"},
		"connect":    {connectCmd, "connect and send a message every second (the seed's client)"},
		"bench":      {benchCmd, "load a server and measure it: rate, latency percentiles, errors (tcpkali, hey)"},
		"ports":      {portsCmd, "list TCP listeners and connections with their processes (lsof -i)"},
		"version":    {versionCmd, "print tcpkit's version, the commit it was built from, and the Go version"},
		"completion": {completionCmd, "print a shell completion script: bash, zsh or fish"},
		"relay":      {relayCmd, "relay connections to another address, byte for byte, with faults on demand (socat, toxiproxy)"},
		"watch":      {watchCmd, "draw each connection to a port as a ladder of its TCP segments, explained (tcpdump)"},
	}
}

func main() {
	os.Exit(run(signalContext(), os.Args[1:], os.Stdout, os.Stderr))
}

// forceKey holds, in a command's context, the channel a second signal
// closes: the first asks to stop cleanly, the second to stop now.
type forceKey struct{}

// signalContext returns a context that SIGINT or SIGTERM cancels; a second
// signal closes its force channel.
func signalContext() context.Context {
	force := make(chan struct{})
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), forceKey{}, (<-chan struct{})(force)))
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		cancel()
		<-sigs
		close(force)
	}()
	return ctx
}

// forced returns the channel a second signal closes, or nil (never ready)
// when the command runs without signals, as in tests.
func forced(ctx context.Context) <-chan struct{} {
	ch, _ := ctx.Value(forceKey{}).(<-chan struct{})
	return ch
}

// run dispatches args[0] to its command and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return exitOK
	case "-version", "--version":
		return versionCmd(ctx, args[1:], stdout, stderr)
	}
	cmd, ok := commands[args[0]]
	if !ok {
		names := make([]string, 0, len(commands))
		for name := range commands {
			names = append(names, name)
		}
		guess := ""
		if g := closest(args[0], names); g != "" {
			guess = "did you mean '" + g + "'? "
		}
		fmt.Fprintf(stderr, "tcpkit: unknown command %q (%srun 'tcpkit help' for the list)\n", args[0], guess)
		return exitUsage
	}
	return cmd.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprint(w, "Usage: tcpkit <command> [flags] [args]\n\nCommands:\n")
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-10s %s\n", name, commands[name].summary)
	}
	fmt.Fprint(w, "\nRun 'tcpkit <command> -h' for a command's flags.\n")
}
