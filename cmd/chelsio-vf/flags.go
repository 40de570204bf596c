package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
)

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
