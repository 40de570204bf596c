package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cni"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/cnistore"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
)

// cmdReconcile frees the attachments of pods whose network namespace is gone
// without a DEL (see cni.Plugin.Reconcile): once, or every --interval until stopped.
func cmdReconcile(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("reconcile", "reconcile [--cni-state-dir DIR] [--cni-path DIR] [--interval 10s] [--once] [--sysfs-root DIR]", stderr)
	root := sysfsRootFlag(fs)
	stateDir := fs.String("cni-state-dir", cnistore.DefaultDir, "the CNI plugin's dataDir (its state)")
	cniPath := fs.String("cni-path", "/opt/cni/bin", "where the IPAM plugins are (CNI_PATH), ':'-separated")
	interval := fs.Duration("interval", 10*time.Second, "time between two rounds")
	once := fs.Bool("once", false, "one round, then exit (1 if anything could not be freed)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *interval <= 0 {
		return fmt.Errorf("--interval %v: want a positive duration", *interval)
	}
	p := cni.New(sysfs.Root(*root), stderr)
	if err := p.AllowNodeDirs(os.Getenv); err != nil {
		return err
	}
	round := func() error {
		released, err := p.Reconcile(*stateDir, *cniPath)
		for _, r := range released {
			pod := r.Pod
			if pod == "" {
				pod = "container " + r.ContainerID
			}
			fmt.Fprintf(stdout, "freed %s %s: VF %s of %s, whose network namespace is gone (%v)\n", r.ContainerID, r.IfName, r.VF, pod, r.Took.Round(time.Millisecond))
		}
		return err
	}
	if *once {
		return round()
	}
	t := time.NewTicker(*interval)
	defer t.Stop()
	for {
		if err := round(); err != nil {
			fmt.Fprintf(stderr, "chelsio-vf reconcile: %v\n", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
