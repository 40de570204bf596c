package main

import (
	"context"
	"fmt"
	"io"

	"github.com/vishvananda/netlink"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cnistore"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/node"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

func cmdSetup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("setup", "setup [--sysfs-root DIR] [--adapter SLOT|all] [--pf 0] [--vfs N] [--mtu M] [--driver cxgb4vf|vfio-pci] [--cni-state-dir DIR] [--pod-resources-socket PATH] [--force] [--dry-run]", stderr)
	root := sysfsRootFlag(fs)
	adapter := fs.String("adapter", "all", `adapter slot ("0000:81:00"), or "all"`)
	pf := fs.Int("pf", 0, "PF (0-3) that creates the VFs")
	vfs := fs.Int("vfs", node.LeaveVFs, "VFs to create on that PF (sriov_numvfs); 0 removes them; default: leave the count as it is")
	mtu := fs.Int("mtu", 0, "MTU of the adapter's port netdevs and of every VF netdev (0: leave)")
	driver := fs.String("driver", vf.DriverCxgb4VF, "driver of the VFs: cxgb4vf or vfio-pci")
	dry := fs.Bool("dry-run", false, "print every write it would make; change nothing")
	stateDir := fs.String("cni-state-dir", cnistore.DefaultDir, "the CNI plugin's dataDir, where the pods that hold VFs are recorded")
	force := fs.Bool("force", false, "change the VF count or drivers even while pods hold VFs (after draining the node)")
	podSocket := holdersSocketFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg := node.SetupConfig{
		Sysfs: sysfs.Root(*root), Adapter: *adapter, PF: *pf, VFs: *vfs, MTU: *mtu,
		Driver: *driver, DryRun: *dry, CNIStateDir: *stateDir, Force: *force,
		Pods: podLister(*podSocket),
	}
	if !*dry {
		h, err := netlink.NewHandle()
		if err != nil {
			return fmt.Errorf("netlink: %w", err)
		}
		defer h.Close()
		cfg.Links = h
	}
	return node.Setup(ctx, cfg, stdout)
}
