package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cnistore"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/node"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
)

// cmdPolicy applies the node policy file: once, or at start and then every
// --interval (edits of the file included) until stopped.
func cmdPolicy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("policy", "policy [--file FILE] [--node-name NAME] [--once] [--dry-run] [--interval 30s] [--cni-state-dir DIR] [--sysfs-root DIR]", stderr)
	root := sysfsRootFlag(fs)
	file := fs.String("file", "/etc/chelsio-sriov/policy.yaml", "the node policy (YAML or JSON)")
	nodeName := fs.String("node-name", os.Getenv("NODE_NAME"), "this node's name, for the policy's nodes lists (env NODE_NAME; default the host name)")
	once := fs.Bool("once", false, "apply once, then exit (1 if anything was refused or failed)")
	dry := fs.Bool("dry-run", false, "print every write it would make; change nothing")
	interval := fs.Duration("interval", 30*time.Second, "time between two checks of the node against the policy")
	stateDir := fs.String("cni-state-dir", cnistore.DefaultDir, "the CNI plugin's dataDir, where the pods that hold VFs are recorded")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *interval <= 0 {
		return fmt.Errorf("--interval %v: want a positive duration", *interval)
	}
	if *nodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("--node-name: none given and no host name: %w", err)
		}
		*nodeName = h
	}
	base := node.SetupConfig{Sysfs: sysfs.Root(*root), DryRun: *dry, CNIStateDir: *stateDir}
	if !*dry {
		h, err := netlink.NewHandle()
		if err != nil {
			return fmt.Errorf("netlink: %w", err)
		}
		defer h.Close()
		base.Links = h
	}
	a := &policyApplier{file: *file, node: *nodeName, base: base, stdout: stdout}
	if *once {
		return a.apply(ctx, true)
	}
	t := time.NewTicker(*interval)
	defer t.Stop()
	for {
		if err := a.apply(ctx, false); err != nil {
			fmt.Fprintf(stderr, "chelsio-vf policy: %v\n", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// policyApplier applies the policy file, and says what it did: everything with
// verbose, else only when the file changed, something was written or refused.
type policyApplier struct {
	file, node string
	base       node.SetupConfig
	stdout     io.Writer
	last       []byte // the file as last applied
}

func (a *policyApplier) apply(ctx context.Context, verbose bool) error {
	data, err := os.ReadFile(a.file)
	if err != nil {
		return fmt.Errorf("read the node policy: %w", err)
	}
	p, err := node.LoadPolicy(data)
	if err != nil {
		return fmt.Errorf("%s: %w (nothing applied)", a.file, err)
	}
	edited := a.last != nil && !bytes.Equal(a.last, data)
	a.last = data
	var out bytes.Buffer
	changed, err := node.ApplyPolicy(ctx, p, a.node, a.base, &out)
	if verbose || edited || changed || err != nil {
		if edited {
			fmt.Fprintf(a.stdout, "%s changed: applying it\n", a.file)
		}
		_, _ = a.stdout.Write(out.Bytes())
	}
	if err != nil {
		return fmt.Errorf("node policy %s on node %s: %w", a.file, a.node, err)
	}
	return nil
}
