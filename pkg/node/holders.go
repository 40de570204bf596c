package node

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cnistore"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/cut"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// holder is what uses a VF: a pod that the CNI plugin attached it to, or a netdev
// that is out of the node's network namespace.
type holder struct {
	vf  vf.PCIAddr
	who string
}

// holders returns what uses each VF of vfs: the CNI plugin's owner record in the
// state directory stateDir (with the pod's name where ADD recorded it), and, for a
// VF on cxgb4vf without a netdev in the node's sysfs, the fact that its netdev is
// in another network namespace (a pod's, attached by something else). A VF on
// vfio-pci is known only by the CNI state.
func holders(stateDir string, vfs []*vf.VF) ([]holder, error) {
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
		if v.Driver == vf.DriverCxgb4VF && v.Netdev == "" {
			out = append(out, holder{v.Addr, "its netdev is in another network namespace"})
		}
	}
	return out, nil
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
