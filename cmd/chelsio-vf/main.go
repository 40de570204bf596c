// Command chelsio-vf is the node tool of chelsio-sriov: it lists a node's Chelsio
// VFs and runs the emulated Chelsio node.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/version"
)

const usage = `chelsio-vf: Chelsio SR-IOV node tool

Usage:
  chelsio-vf list [--json] [--sysfs-root DIR]      list the node's Chelsio VFs
  chelsio-vf doctor [--json] [options]             check the node; exit 1 on any FAIL
  chelsio-vf setup [--pf 0] [--vfs N] [options]    create VFs, set MTUs, bind drivers
  chelsio-vf install-cni [--dest /opt/cni/bin]     install the CNI plugin atomically
  chelsio-vf reconcile [--once] [options]          free the VFs and leases of pods gone without a DEL
  chelsio-vf policy [--file F] [--once] [options]  apply the node policy (VFs, MTUs, drivers) and keep it
  chelsio-vf emulate up|down|status|exec ...       run an emulated Chelsio node
  chelsio-vf bench server|client [options]         the seed's iperf test: Gbps and CPU % per I/O size
  chelsio-vf version                               print the version, commit and build date

Run 'chelsio-vf <command> --help' for the options of a command.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

var (
	// errUsage marks errors already explained by a usage message (exit 2).
	errUsage = errors.New("usage")
	// errReported marks failures already printed in full (exit 1).
	errReported = errors.New("reported")
)

// command runs one of chelsio-vf's commands with its arguments.
type command func(ctx context.Context, args []string, stdout, stderr io.Writer) error

// commands are chelsio-vf's commands, but for version and help.
var commands = map[string]command{
	"list":        uninterrupted(cmdList),
	"emulate":     cmdEmulate,
	"reconcile":   cmdReconcile,
	"policy":      cmdPolicy,
	"doctor":      uninterrupted(cmdDoctor),
	"setup":       cmdSetup,
	"install-cni": cmdInstallCNI,
	"bench":       cmdBench,
}

// uninterrupted is a command that runs to its end, whatever the context.
func uninterrupted(cmd func(args []string, stdout, stderr io.Writer) error) command {
	return func(_ context.Context, args []string, stdout, stderr io.Writer) error {
		return cmd(args, stdout, stderr)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "version", "--version":
		fmt.Fprintln(stdout, version.Line("chelsio-vf"))
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		cmd, ok := commands[args[0]]
		if !ok {
			fmt.Fprintf(stderr, "chelsio-vf: unknown command %q\n\n%s", args[0], usage)
			return 2
		}
		err = cmd(ctx, args[1:], stdout, stderr)
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage), errors.Is(err, flag.ErrHelp):
		return 2
	case errors.Is(err, errReported):
		return 1
	default:
		fmt.Fprintf(stderr, "chelsio-vf: %v\n", err)
		return 1
	}
}
