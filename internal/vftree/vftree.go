// Package vftree builds the sysfs trees that tests of the device plugin and the
// DRA driver share, so that their expectations speak of the same VFs.
package vftree

import (
	"testing"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/emulate/sysfstree"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// TwoAdapters is a node of two adapters, ports not yet cabled:
//
//   - a T62100-CR at 0000:81:00 on NUMA node 0, VFs 2, 2, 1, 1 on PF0-PF3
//     (PF0/PF2 → port 0, enp129s0f4; PF1/PF3 → port 1, enp129s0f4d1); VF 1/1
//     (0000:81:01.5) on vfio-pci. VF device ID 680d.
//   - a T540-CR at 0000:83:00 on NUMA node 1, one VF on each PF (PFn → port n);
//     VF 2/0 (0000:83:01.2) unbound.
//
// Its VFs: 81:01.0 (PF0 VF0), 81:01.4 (PF0 VF1), 81:01.1 (PF1 VF0), 81:01.5 (PF1
// VF1, vfio), 81:01.2 (PF2 VF0), 81:01.3 (PF3 VF0); 83:01.0-83:01.3 (PF0-PF3 VF0).
func TwoAdapters(t testing.TB) *sysfstree.Tree {
	t.Helper()
	tree, err := sysfstree.Build(t.TempDir(), sysfstree.Options{},
		sysfstree.Adapter{
			Model: "T62100-CR", Bus: 0x81, NUMANode: 0, VFs: [4]int{2, 2, 1, 1},
			Drivers: map[sysfstree.VFRef]string{{PF: 1, VF: 1}: vf.DriverVFIO},
		},
		sysfstree.Adapter{
			Model: "T540-CR", Bus: 0x83, NUMANode: 1, VFs: [4]int{1, 1, 1, 1},
			Drivers: map[sysfstree.VFRef]string{{PF: 2, VF: 0}: ""},
		},
	)
	if err != nil {
		t.Fatalf("sysfstree.Build: %v", err)
	}
	return tree
}
