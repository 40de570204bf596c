// Package sysfstree builds fake sysfs trees of Chelsio adapters, shaped exactly like the
// kernel's (docs/hardware.md section 7): device directories under a PCI root port,
// bus/pci/devices and bus/pci/drivers links, physfn/virtfnN/driver/subsystem/
// iommu_group links, sriov_* files, the cxgb4 management netdev mgmtpf<n>,<pf> on
// each PF with VFs, PF4 port netdevs and VF netdevs under net/ and class/net.
//
// Unit tests build trees under t.TempDir(); the emulated node (package emulate) builds
// one per worker and keeps it in step with the worker's network namespace.
package sysfstree
