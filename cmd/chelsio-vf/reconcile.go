package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cni"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/cnistore"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/podresources"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
)

// cmdReconcile frees the attachments of pods whose network namespace is gone
// without a DEL, or that kubelet no longer lists (see cni.Plugin.Reconcile): once,
// or every --interval until stopped.
func cmdReconcile(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("reconcile", "reconcile [--cni-state-dir DIR] [--cni-path DIR] [--interval 10s] [--once] [--pod-resources-socket SOCKET [--pod-grace 2m]] [--sysfs-root DIR]", stderr)
	root := sysfsRootFlag(fs)
	stateDir := fs.String("cni-state-dir", cnistore.DefaultDir, "the CNI plugin's dataDir (its state)")
	cniPath := fs.String("cni-path", "/opt/cni/bin", "where the IPAM plugins are (CNI_PATH), ':'-separated")
	interval := fs.Duration("interval", 10*time.Second, "time between two rounds")
	once := fs.Bool("once", false, "one round, then exit (1 if anything could not be freed)")
	pods := podFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *interval <= 0 {
		return fmt.Errorf("--interval %v: want a positive duration", *interval)
	}
	check, err := pods.check(ctx, stderr)
	if err != nil {
		return err
	}
	p := cni.New(sysfs.Root(*root), stderr)
	if err := p.AllowNodeDirs(os.Getenv); err != nil {
		return err
	}
	round := func() error {
		released, err := p.Reconcile(*stateDir, *cniPath, check)
		for _, r := range released {
			pod := r.Pod
			if pod == "" {
				pod = "container " + r.ContainerID
			}
			fmt.Fprintf(stdout, "freed %s %s: VF %s of %s, because %s (%v)\n", r.ContainerID, r.IfName, r.VF, pod, r.Why, r.Took.Round(time.Millisecond))
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

// podFlagValues are reconcile's flags for kubelet's pod-resources API.
type podFlagValues struct {
	socket  *string
	grace   *time.Duration
	confirm *time.Duration
}

func podFlags(fs *flag.FlagSet) podFlagValues {
	return podFlagValues{
		socket:  fs.String("pod-resources-socket", "", "kubelet's pod-resources socket ("+podresources.DefaultSocket+"): also free the attachments of pods kubelet no longer lists; empty: only network namespaces count"),
		grace:   fs.Duration("pod-grace", 2*time.Minute, "with --pod-resources-socket: an attachment younger than this is never freed for its pod's absence"),
		confirm: fs.Duration("pod-confirm", time.Second, "with --pod-resources-socket: a pod counts as gone when two lists this far apart both leave it out"),
	}
}

// check returns the PodCheck the flags ask for (nil without a socket). It says on
// stderr when kubelet stops answering, and when it answers again.
func (v podFlagValues) check(ctx context.Context, stderr io.Writer) (*cni.PodCheck, error) {
	if *v.grace < 0 {
		return nil, fmt.Errorf("--pod-grace %v: want 0 or more", *v.grace)
	}
	if *v.confirm <= 0 {
		return nil, fmt.Errorf("--pod-confirm %v: want a positive duration", *v.confirm)
	}
	if *v.socket == "" {
		return nil, nil
	}
	client := podresources.Client{Socket: *v.socket}
	down := false
	list := func() (map[string]bool, error) {
		pods, err := client.List(ctx)
		if err != nil {
			if !down {
				fmt.Fprintf(stderr, "chelsio-vf reconcile: %v; only network namespaces count until it answers\n", err)
			}
			down = true
			return nil, err
		}
		if down {
			fmt.Fprintf(stderr, "chelsio-vf reconcile: kubelet's pod-resources API at %s answers again\n", *v.socket)
		}
		down = false
		out := map[string]bool{}
		for _, p := range pods {
			out[p.Key()] = true
		}
		return out, nil
	}
	return &cni.PodCheck{Pods: list, Grace: *v.grace, Confirm: *v.confirm}, nil
}
