package deviceplugin

import (
	"maps"
	"slices"
)

// Device is one VF as a resource offers it to kubelet.
type Device struct {
	ID         string // the VF's PCI address: Multus hands it to the CNI plugin
	Healthy    bool
	Reason     string // why it is unhealthy
	Stranded   bool   // its netdev is out of the node and no CNI attachment records it
	NUMANode   int    // -1 when unknown or excluded from topology
	Adapter    string // PCI slot of the adapter
	Port       int    // physical port
	PF         string // parent PF address
	VFIndex    int
	Driver     string
	IOMMUGroup int // -1 when none
	Model      string
	Chip       string            // T4 … T7
	MgmtNetdev string            // the parent PF's management netdev
	LinkSpeed  int               // the port speed the board's model implies, in Mbps
	Extra      map[string]string // the pool's additionalInfo for this device
}

// VFIO reports whether the device is for user space (vfio-pci).
func (d *Device) VFIO() bool { return d.Driver == "vfio-pci" }

func (d *Device) equal(o *Device) bool {
	return d.ID == o.ID && d.Healthy == o.Healthy && d.Reason == o.Reason && d.Stranded == o.Stranded && d.NUMANode == o.NUMANode &&
		d.Adapter == o.Adapter && d.Port == o.Port && d.PF == o.PF && d.VFIndex == o.VFIndex &&
		d.Driver == o.Driver && d.IOMMUGroup == o.IOMMUGroup && d.Model == o.Model &&
		d.Chip == o.Chip && d.MgmtNetdev == o.MgmtNetdev && d.LinkSpeed == o.LinkSpeed && maps.Equal(d.Extra, o.Extra)
}

// Resource is one extended resource: a pool of the configuration and its devices.
type Resource struct {
	Prefix  string // e.g. chelsio.com
	Name    string // e.g. vf
	Devices map[string]*Device
}

// FullName returns "<prefix>/<name>".
func (r *Resource) FullName() string { return r.Prefix + "/" + r.Name }

// IDs returns the device IDs in order.
func (r *Resource) IDs() []string {
	return slices.Sorted(maps.Keys(r.Devices))
}

func (r *Resource) equal(o *Resource) bool {
	if r.Prefix != o.Prefix || r.Name != o.Name || len(r.Devices) != len(o.Devices) {
		return false
	}
	for id, d := range r.Devices {
		od, ok := o.Devices[id]
		if !ok || !d.equal(od) {
			return false
		}
	}
	return true
}

// DeviceTree is what one scan found: resources by full name. A resource of the
// configuration with no device is present and empty, so that kubelet sees 0 rather
// than a vanished resource.
type DeviceTree map[string]*Resource
