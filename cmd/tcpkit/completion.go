package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

const completionUsage = `Usage: tcpkit completion bash|zsh|fish

Print a completion script for the shell: commands, their flags with
their help, bench's modes, and file names where a flag takes a file.

Examples:
  source <(tcpkit completion bash)      in ~/.bashrc
  tcpkit completion zsh > _tcpkit       into a directory of $fpath, then compinit
  tcpkit completion fish > ~/.config/fish/completions/tcpkit.fish

Flags:
`

// compCommand is a command as completion sees it.
type compCommand struct {
	name, summary string
	flags         []compFlag
	args          []string // words its first argument can be
}

// compFlag is one flag: its name as typed (-c, --port), help, and whether
// it takes a value, and a file at that.
type compFlag struct {
	name, help  string
	value, file bool
}

// compArgs are the words a command's first argument can be.
var compArgs = map[string][]string{
	"bench":      {"oneshot", "pingpong", "stream", "idle", "merge"},
	"completion": {"bash", "zsh", "fish"},
}

func completionCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("completion", completionUsage, stdout)
	pos, err := fs.parse(args, stderr)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) != 1 {
		return usageError(stderr, "completion", "give one shell: bash, zsh or fish")
	}
	cmds := completionCommands(ctx)
	switch pos[0] {
	case "bash":
		writeBash(stdout, cmds)
	case "zsh":
		writeZsh(stdout, cmds)
	case "fish":
		writeFish(stdout, cmds)
	default:
		return usageError(stderr, "completion", "unknown shell %q: use bash, zsh or fish", pos[0])
	}
	return exitOK
}

// completionCommands asks every command for its flags: run with -h, each
// defines them and stops.
func completionCommands(ctx context.Context) []compCommand {
	var cmds []compCommand
	for name, c := range commands {
		cc := compCommand{name: name, summary: c.summary, args: compArgs[name]}
		if name != "completion" {
			c.run(ctx, []string{"-h"}, io.Discard, io.Discard)
		}
		if v, ok := defined.Load(name); ok {
			v.(*flag.FlagSet).VisitAll(func(f *flag.Flag) {
				placeholder, help := flag.UnquoteUsage(f)
				cf := compFlag{name: "--" + f.Name, help: help, value: placeholder != ""}
				if len(f.Name) == 1 {
					cf.name = "-" + f.Name
				}
				cf.file = placeholder == "file" || placeholder == "FILE" || placeholder == "path"
				cc.flags = append(cc.flags, cf)
			})
		}
		cmds = append(cmds, cc)
	}
	slices.SortFunc(cmds, func(a, b compCommand) int { return strings.Compare(a.name, b.name) })
	return cmds
}

func writeBash(w io.Writer, cmds []compCommand) {
	var names []string
	for _, c := range cmds {
		names = append(names, c.name)
	}
	fmt.Fprintf(w, `# bash completion for tcpkit: source <(tcpkit completion bash)
_tcpkit() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} words="" files="" args=""
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W %q -- "$cur"))
    return
  fi
  case ${COMP_WORDS[1]} in
`, strings.Join(append(names, "help"), " "))
	for _, c := range cmds {
		var flags, files []string
		for _, f := range c.flags {
			flags = append(flags, f.name)
			if f.file {
				files = append(files, f.name)
			}
		}
		fmt.Fprintf(w, "    %s) words=%q files=%q; args=%q ;;\n", c.name, strings.Join(flags, " "), " "+strings.Join(files, " ")+" ", strings.Join(c.args, " "))
	}
	fmt.Fprint(w, `  esac
  if [[ $files == *" $prev "* ]]; then
    COMPREPLY=($(compgen -f -- "$cur"))
  elif [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
  elif [ "$COMP_CWORD" -eq 2 ] && [ -n "$args" ]; then
    COMPREPLY=($(compgen -W "$args" -- "$cur"))
  fi
}
complete -o default -F _tcpkit tcpkit
`)
}

// zshQuote makes s safe inside a single-quoted _arguments spec.
func zshQuote(s string) string {
	return strings.NewReplacer("'", "", "[", "(", "]", ")", ":", " -", "\\", "").Replace(s)
}

func writeZsh(w io.Writer, cmds []compCommand) {
	fmt.Fprint(w, "#compdef tcpkit\n# zsh completion for tcpkit: tcpkit completion zsh > \"${fpath[1]}/_tcpkit\"\n_tcpkit() {\n  local -a commands\n  commands=(\n")
	for _, c := range cmds {
		fmt.Fprintf(w, "    '%s:%s'\n", c.name, zshQuote(c.summary))
	}
	fmt.Fprint(w, "  )\n  if (( CURRENT == 2 )); then\n    _describe 'command' commands\n    return\n  fi\n  case $words[2] in\n")
	for _, c := range cmds {
		fmt.Fprintf(w, "    %s)\n      _arguments \\\n", c.name)
		for _, f := range c.flags {
			spec := "'" + f.name + "[" + zshQuote(f.help) + "]"
			switch {
			case f.file:
				spec += ":file:_files"
			case f.value:
				spec += ":value: "
			}
			fmt.Fprintf(w, "        %s' \\\n", spec)
		}
		if len(c.args) > 0 {
			fmt.Fprintf(w, "        '1:argument:(%s)' \\\n", strings.Join(c.args, " "))
		}
		fmt.Fprint(w, "        '*:file:_files' ;;\n")
	}
	fmt.Fprint(w, "  esac\n}\ncompdef _tcpkit tcpkit\n")
}

// fishQuote makes s safe inside a single-quoted fish string.
func fishQuote(s string) string { return strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) }

func writeFish(w io.Writer, cmds []compCommand) {
	fmt.Fprint(w, "# fish completion for tcpkit: tcpkit completion fish > ~/.config/fish/completions/tcpkit.fish\ncomplete -c tcpkit -f\n")
	for _, c := range cmds {
		fmt.Fprintf(w, "complete -c tcpkit -n __fish_use_subcommand -a %s -d '%s'\n", c.name, fishQuote(c.summary))
		cond := "'__fish_seen_subcommand_from " + c.name + "'"
		for _, a := range c.args {
			fmt.Fprintf(w, "complete -c tcpkit -n %s -a %s\n", cond, a)
		}
		for _, f := range c.flags {
			opt := "-l " + strings.TrimPrefix(f.name, "--")
			if len(f.name) == 2 {
				opt = "-s " + f.name[1:]
			}
			switch {
			case f.file:
				opt += " -r -F"
			case f.value:
				opt += " -x"
			}
			fmt.Fprintf(w, "complete -c tcpkit -n %s %s -d '%s'\n", cond, opt, fishQuote(f.help))
		}
	}
}
