// Command chelsio-vf is the node tool of chelsio-sriov: it lists a node's Chelsio
// VFs and runs the emulated Chelsio node.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
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

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "list":
		err = cmdList(args[1:], stdout, stderr)
	case "emulate":
		err = cmdEmulate(ctx, args[1:], stdout, stderr)
	case "reconcile":
		err = cmdReconcile(ctx, args[1:], stdout, stderr)
	case "policy":
		err = cmdPolicy(ctx, args[1:], stdout, stderr)
	case "doctor":
		err = cmdDoctor(args[1:], stdout, stderr)
	case "setup":
		err = cmdSetup(ctx, args[1:], stdout, stderr)
	case "install-cni":
		err = cmdInstallCNI(ctx, args[1:], stdout, stderr)
	case "bench":
		err = cmdBench(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, version.Line("chelsio-vf"))
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "chelsio-vf: unknown command %q\n\n%s", args[0], usage)
		return 2
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

// newFlags returns a flag set that prints its usage to stderr and returns errors.
func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: chelsio-vf %s\n\nOptions:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// sysfsRootFlag adds --sysfs-root to fs.
func sysfsRootFlag(fs *flag.FlagSet) *string {
	return fs.String("sysfs-root", string(sysfs.FromEnv()), "sysfs root (env CHELSIO_SYSFS_ROOT)")
}

// writeJSON writes v to w as indented JSON, for --json.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// parse parses flags and refuses stray arguments.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "chelsio-vf %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	return nil
}
