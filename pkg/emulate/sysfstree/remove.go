package sysfstree

import (
	"errors"
	"os"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// RemoveFunction removes a PCI function: its netdevs, driver and IOMMU links, its
// bus/pci/devices link and its directory.
func (t *Tree) RemoveFunction(addr vf.PCIAddr) error {
	dir, err := t.FunctionDir(addr)
	if err != nil {
		return err
	}
	if names, err := t.Root.ReadDir(dir + "/net"); err == nil {
		for _, n := range names {
			if err := removeAll(t.Root.Path("class/net/" + n)); err != nil {
				return err
			}
		}
	}
	if err := t.Bind(addr, ""); err != nil {
		return err
	}
	if g, err := t.Root.LinkBase(dir + "/iommu_group"); err == nil {
		if err := removeAll(t.Root.Path("kernel/iommu_groups/" + g)); err != nil {
			return err
		}
	}
	if err := removeAll(t.Root.Path(DevicePath(addr))); err != nil {
		return err
	}
	return removeAll(t.Root.Path(dir))
}

func removeAll(p string) error {
	err := os.RemoveAll(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}
