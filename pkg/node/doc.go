// Package node prepares a Kubernetes node for chelsio-sriov and checks it.
//
// Install puts the CNI plugin binary into the runtime's plugin directory atomically
// (`chelsio-vf install-cni`): the new binary is written to a temporary file beside
// the old one, synced and renamed over it, so that a runtime executing the plugin at
// that moment runs either the old file or the new one, never a partial one, and never
// fails with ETXTBSY.
//
// Doctor checks a node against the prerequisites of the reference procedure and of
// chelsio-sriov (`chelsio-vf doctor`): the Chelsio adapters and their drivers, VFs
// and their binding, IOMMU, MTUs, swap, kernel modules and sysctls, the CNI binary
// and the device plugin's socket. Each check is a small function of Facts, which are
// read under roots given in a Config (sysfs, /proc, the CNI and device-plugin
// directories), so tests and the emulated node stand in for a real node.
package node
