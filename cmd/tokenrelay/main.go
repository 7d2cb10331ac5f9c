// Command tokenrelay is the operator's tool for a tokenrelay deployment:
//
//	tokenrelay token inspect [TOKEN|-]          decode a token without trusting it
//	tokenrelay token verify  --jwks URL ...     verify a token with the real engine
//	tokenrelay keys list     --dir DIR          an issuer's signing keys
//	tokenrelay keys rotate   --dir DIR          promote the next signing key
//	tokenrelay vault status  --data DIR         sealed records per key version
//	tokenrelay vault rotate  --data DIR         add a vault key, re-encrypt everything
//	tokenrelay vault reencrypt --data DIR       re-encrypt under the current key
//	tokenrelay orders stuck  --data DIR         orders whose compensation an issuer refused for good
//	tokenrelay orders retry  ORDER_ID           let the saga compensate their refused steps again
//	tokenrelay orders resolve ORDER_ID --note T record that they were settled by hand
//	tokenrelay audit jti JTI                    a token's history across the services (admin)
//	tokenrelay audit order ORDER_ID             an order's token timeline (admin)
//
// Run "tokenrelay help COMMAND" for a command's flags. Exit status: 0 on
// success, 1 when the command failed (an invalid token, an unreadable key
// ring, a record that would not re-encrypt, an order that needs no
// operator), 2 on a usage error.
//
// No output or error ever contains a private key, a vault key, or a whole
// token: tokens are shown decoded, never echoed, and errors name the check
// or the record that failed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// Exit statuses.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runContext(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole command without the process around it: it parses args
// (without the program name), reads stdin when a command reads a token from
// it, writes results to stdout and diagnostics to stderr, and returns the
// exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runContext(context.Background(), args, stdin, stdout, stderr)
}

// env is what a command runs with.
type env struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	now    func() time.Time
	getenv func(string) string
}

// command is one subcommand. setup declares its flags on fs and returns the
// function that runs it with the positional arguments.
type command struct {
	name    string // "token verify"
	args    string // synopsis after the flags, e.g. "[TOKEN|-]"
	summary string
	details string
	setup   func(fs *flag.FlagSet) func(e *env, args []string) error
}

// commands lists every subcommand, in the order help shows them.
func commands() []command {
	return []command{tokenInspectCommand(), tokenVerifyCommand(), keysListCommand(), keysRotateCommand(),
		vaultStatusCommand(), vaultRotateCommand(), vaultReencryptCommand(),
		ordersStuckCommand(), ordersRetryCommand(), ordersResolveCommand(), auditJTICommand(), auditOrderCommand()}
}

// usageError is a mistake in the command line: exit status 2 with the
// command's usage.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// errReported means the command has already said why it failed (an invalid
// token's report); exit status 1 without another message.
var errReported = errors.New("failure reported")

func runContext(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runEnv(&env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr, now: time.Now, getenv: os.Getenv}, args)
}

// runEnv runs the command args with e: tests give it their own clock.
func runEnv(e *env, args []string) int {
	stdout, stderr := e.stdout, e.stderr
	if len(args) == 0 {
		globalUsage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		return help(stdout, stderr, args[1:])
	}
	cmd, rest, ok := find(args)
	if !ok {
		if len(args) == 1 || isGroup(args[0]) {
			if isGroup(args[0]) {
				fmt.Fprintf(stderr, "tokenrelay %s: missing or unknown subcommand\n\n", args[0])
			} else {
				fmt.Fprintf(stderr, "tokenrelay: unknown command %q\n\n", truncate(args[0], 32))
			}
		} else {
			fmt.Fprintf(stderr, "tokenrelay: unknown command %q\n\n", truncate(strings.Join(args[:2], " "), 48))
		}
		globalUsage(stderr)
		return exitUsage
	}
	fs := flag.NewFlagSet("tokenrelay "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are printed below, with the usage
	exec := cmd.setup(fs)
	pos, err := parse(fs, rest)
	if errors.Is(err, flag.ErrHelp) {
		commandUsage(stdout, cmd)
		return exitOK
	}
	if err == nil {
		err = exec(e, pos)
	}
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue) || isFlagError(err):
		fmt.Fprintf(stderr, "tokenrelay %s: %v\n\n", cmd.name, err)
		commandUsage(stderr, cmd)
		return exitUsage
	case errors.Is(err, errReported):
		return exitFail
	default:
		fmt.Fprintf(stderr, "tokenrelay %s: %v\n", cmd.name, err)
		return exitFail
	}
}

// flagError marks an error of the flag package (unknown flag, bad value).
type flagError struct{ err error }

// Error shortens the flag package's message, which quotes the bad value: that
// value might be a token pasted in the wrong place.
func (e flagError) Error() string { return truncate(e.err.Error(), 120) }

func isFlagError(err error) bool {
	var fe flagError
	return errors.As(err, &fe)
}

// parse parses flags anywhere among the arguments, so that
// "token verify TOKEN --issuer x" works as well as the flags-first order;
// "--" ends the flags.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, flagError{err}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// fs.Parse stops at the first positional argument or after "--".
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func find(args []string) (command, []string, bool) {
	if len(args) < 2 {
		return command{}, nil, false
	}
	for _, c := range commands() {
		if c.name == args[0]+" "+args[1] {
			return c, args[2:], true
		}
	}
	return command{}, nil, false
}

func isGroup(name string) bool {
	for _, c := range commands() {
		if strings.HasPrefix(c.name, name+" ") {
			return true
		}
	}
	return false
}

func help(stdout, stderr io.Writer, topic []string) int {
	if len(topic) == 0 {
		globalUsage(stdout)
		return exitOK
	}
	if cmd, _, ok := find(topic); ok {
		commandUsage(stdout, cmd)
		return exitOK
	}
	if len(topic) == 1 && isGroup(topic[0]) {
		fmt.Fprintf(stdout, "Commands of tokenrelay %s:\n\n", topic[0])
		for _, c := range commands() {
			if strings.HasPrefix(c.name, topic[0]+" ") {
				fmt.Fprintf(stdout, "  tokenrelay %-17s %s\n", c.name, c.summary)
			}
		}
		return exitOK
	}
	fmt.Fprintf(stderr, "tokenrelay help: unknown command %q\n\n", truncate(strings.Join(topic, " "), 48))
	globalUsage(stderr)
	return exitUsage
}

func globalUsage(w io.Writer) {
	fmt.Fprint(w, `tokenrelay is the operator's command for a tokenrelay deployment.

Usage:
  tokenrelay COMMAND [flags] [arguments]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-17s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `  help [COMMAND]    show the flags of a command

Exit status: 0 success, 1 failure (such as an invalid token), 2 usage error.
`)
}

func commandUsage(w io.Writer, c command) {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	c.setup(fs)
	synopsis := "tokenrelay " + c.name
	hasFlags := false
	fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		synopsis += " [flags]"
	}
	if c.args != "" {
		synopsis += " " + c.args
	}
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", synopsis, strings.TrimSpace(c.summary))
	if c.details != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.details))
	}
	if hasFlags {
		fmt.Fprint(w, "\nFlags:\n")
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
}

// truncate shortens untrusted text quoted in a message.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
