package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cnistore"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/cut"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/podresources"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// PodLister lists the pods kubelet runs and the devices each holds: kubelet's
// pod-resources API (podresources.Client).
type PodLister interface {
	List(ctx context.Context) ([]podresources.Pod, error)
}

// holder is what uses a VF: a pod that the CNI plugin attached it to, or a netdev
// that is out of the node's network namespace.
type holder struct {
	vf  vf.PCIAddr
	who string
}

// holders returns what uses each VF of vfs: the CNI plugin's owner record in the
// state directory stateDir (with the pod's name where ADD recorded it); a pod that
// kubelet says holds the VF's PCI address as a device of any resource (pods, when
// not nil: the device plugin's and a DPDK pod's vfio-pci VFs, which no CNI state
// records); and, for a VF on cxgb4vf without a netdev in the node's sysfs, the
// fact that its netdev is in another network namespace (a pod's, attached by
// something else).
func holders(ctx context.Context, stateDir string, pods PodLister, vfs []*vf.VF) ([]holder, error) {
	byDevice, err := devicesHeld(ctx, pods)
	if err != nil {
		return nil, err
	}
	store := cnistore.Store{Dir: stateDir}
	var out []holder
	for _, v := range vfs {
		o, err := store.Owner(v.Addr.String())
		switch {
		case err == nil:
			out = append(out, holder{v.Addr, podOf(store, o)})
			continue
		case errors.Is(err, fs.ErrNotExist):
		default:
			var ce *cnistore.CorruptError
			if !errors.As(err, &ce) {
				return nil, fmt.Errorf("read the CNI state of VF %s: %w", v.Addr, err)
			}
		}
		switch pod, ok := byDevice[v.Addr.String()]; {
		case ok:
			out = append(out, holder{v.Addr, "pod " + pod + " (kubelet)"})
		case v.Driver == vf.DriverCxgb4VF && v.Netdev == "":
			out = append(out, holder{v.Addr, "its netdev is in another network namespace"})
		}
	}
	return out, nil
}

// devicesHeld maps each device ID that a pod holds, by kubelet's account, to
// "<namespace>/<name>" of that pod; nil pods asks no one.
func devicesHeld(ctx context.Context, pods PodLister) (map[string]string, error) {
	if pods == nil {
		return nil, nil
	}
	list, err := pods.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("ask kubelet which pods hold VFs: %w", err)
	}
	held := map[string]string{}
	for _, p := range list {
		for _, ids := range p.Devices {
			for _, id := range ids {
				held[id] = cut.Value(p.Namespace) + "/" + cut.Value(p.Name)
			}
		}
	}
	return held, nil
}

// podOf names the attachment of an owner record: the pod when ADD recorded it,
// else the container and its network namespace.
func podOf(store cnistore.Store, o *cnistore.Owner) string {
	if a, err := store.LoadAttachment(o.ContainerID, o.IfName); err == nil && a.PodName != "" {
		return fmt.Sprintf("pod %s/%s", cut.Value(a.PodNamespace), cut.Value(a.PodName))
	}
	return fmt.Sprintf("container %s (netns %s)", cut.Value(o.ContainerID), cut.Value(o.Netns))
}

// HeldError is the refusal of a change that would take VFs from what uses them:
// What is the change, Holders one "<VF>: <holder>" per VF held, the holder being a
// pod ("pod <namespace>/<name>") where the CNI plugin recorded it.
type HeldError struct {
	What    string
	Holders []string
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("%s would take VFs that are in use (%s): drain the node (kubectl drain) first, or pass --force", e.What, strings.Join(e.Holders, "; "))
}

// heldError refuses a change that would take VFs from the pods that use them.
func heldError(what string, hs []holder) *HeldError {
	parts := make([]string, len(hs))
	for i, h := range hs {
		parts[i] = fmt.Sprintf("%s: %s", h.vf, h.who)
	}
	return &HeldError{What: what, Holders: parts}
}
