package main

import (
	"context"
	"errors"
	"flag"
	"io/fs"
	"os"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/node"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/podresources"
)

// holdersSocketFlag is --pod-resources-socket of the verbs that refuse to take VFs
// from pods (setup, policy).
func holdersSocketFlag(fs *flag.FlagSet) *string {
	return fs.String("pod-resources-socket", podresources.DefaultSocket,
		"kubelet's pod-resources socket, asked which pods hold VFs before a change that removes or rebinds them; empty: ask no one (only the CNI state and the netdevs tell)")
}

// podLister is the kubelet to ask at socket; none when socket is empty.
func podLister(socket string) node.PodLister {
	if socket == "" {
		return nil
	}
	return kubeletPods{podresources.Client{Socket: socket}}
}

// kubeletPods asks kubelet when its socket is there, and no one when it is not
// (a node without kubelet, or before kubelet first starts, runs no pod). Asked at
// each round, as the policy agent starts before kubelet.
type kubeletPods struct{ podresources.Client }

func (k kubeletPods) List(ctx context.Context) ([]podresources.Pod, error) {
	if _, err := os.Stat(k.Socket); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return k.Client.List(ctx)
}
