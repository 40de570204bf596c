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
	var cfg node.SetupConfig
	fs := newFlags("setup", "setup [--sysfs-root DIR] [--adapter SLOT|all] [--pf 0] [--vfs N] [--mtu M] [--driver cxgb4vf|vfio-pci] [--cni-state-dir DIR] [--pod-resources-socket PATH] [--force] [--dry-run]", stderr)
	root := sysfsRootFlag(fs)
	fs.StringVar(&cfg.Adapter, "adapter", "all", `adapter slot ("0000:81:00"), or "all"`)
	fs.IntVar(&cfg.PF, "pf", 0, "PF (0-3) that creates the VFs")
	fs.IntVar(&cfg.VFs, "vfs", node.LeaveVFs, "VFs to create on that PF (sriov_numvfs); 0 removes them; default: leave the count as it is")
	fs.IntVar(&cfg.MTU, "mtu", 0, "MTU of the adapter's port netdevs and of every VF netdev (0: leave)")
	fs.StringVar(&cfg.Driver, "driver", vf.DriverCxgb4VF, "driver of the VFs: cxgb4vf or vfio-pci")
	fs.BoolVar(&cfg.DryRun, "dry-run", false, "print every write it would make; change nothing")
	fs.StringVar(&cfg.CNIStateDir, "cni-state-dir", cnistore.DefaultDir, "the CNI plugin's dataDir, where the pods that hold VFs are recorded")
	fs.BoolVar(&cfg.Force, "force", false, "change the VF count or drivers even while pods hold VFs (after draining the node)")
	podSocket := holdersSocketFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg.Sysfs, cfg.Pods = sysfs.Root(*root), podLister(*podSocket)
	closeLinks, err := openLinks(&cfg)
	if err != nil {
		return err
	}
	defer closeLinks()
	return node.Setup(ctx, cfg, stdout)
}

// openLinks gives cfg a netlink handle in the current network namespace, unless
// it is a dry run (which needs none); the caller closes it after.
func openLinks(cfg *node.SetupConfig) (closeLinks func(), err error) {
	if cfg.DryRun {
		return func() {}, nil
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	cfg.Links = h
	return h.Close, nil
}
