package dra

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/dynamic-resource-allocation/deviceattribute"
	"k8s.io/utils/ptr"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/deviceplugin"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
)

// DriverName is the DRA driver's name: the driver of its ResourceSlices and the
// one a DeviceClass selects.
const DriverName = "vf.chelsio.com"

// DefaultResourceName is --resource-name's default: the resource name the shipped
// NetworkAttachmentDefinition's k8s.v1.cni.cncf.io/resourceName annotation gives.
const DefaultResourceName = "chelsio.com/chelsio_sriov_netdevice"

// Attribute names: ours under chelsio.com/, Multus' under k8s.cni.cncf.io/.
const (
	AttrModel        resourceapi.QualifiedName = "chelsio.com/model"
	AttrChip         resourceapi.QualifiedName = "chelsio.com/chip"
	AttrPort         resourceapi.QualifiedName = "chelsio.com/port"
	AttrPF           resourceapi.QualifiedName = "chelsio.com/pf"
	AttrVFIndex      resourceapi.QualifiedName = "chelsio.com/vfIndex"
	AttrDriver       resourceapi.QualifiedName = "chelsio.com/driver"
	AttrLinkSpeed    resourceapi.QualifiedName = "chelsio.com/linkSpeed"
	AttrNUMANode     resourceapi.QualifiedName = "chelsio.com/numaNode"
	AttrMgmtNetdev   resourceapi.QualifiedName = "chelsio.com/mgmtNetdev"
	AttrDeviceID     resourceapi.QualifiedName = "k8s.cni.cncf.io/deviceID"
	AttrResourceName resourceapi.QualifiedName = "k8s.cni.cncf.io/resourceName"
)

// TaintKey is the key of the taint of a VF that cannot carry traffic: its port's
// link is down, it is stranded, or its driver no longer matches.
const TaintKey = "vf.chelsio.com/unhealthy"

// Taint values: why a VF is tainted.
const (
	TaintLinkDown  = "link-down"
	TaintStranded  = "stranded"
	TaintUnhealthy = "unhealthy"
)

// maxSliceDevices is how many devices one ResourceSlice of the v1 API may hold.
const maxSliceDevices = resourceapi.ResourceSliceMaxDevices

// DeviceName is the DRA device name of the VF at a PCI address: "vf-" and the
// address with ':' and '.' as '-' ("0000:81:01.0" → "vf-0000-81-01-0"), a DNS label.
func DeviceName(addr string) string {
	return "vf-" + strings.NewReplacer(":", "-", ".", "-").Replace(strings.ToLower(addr))
}

// Publication is what one scan gives to publish: the devices of the node in name
// order, and the scanned VFs by device name (tainted ones too, and withdrawn ones
// when taints are off).
type Publication struct {
	Devices []resourceapi.Device
	VFs     map[string]*deviceplugin.Device
}

// devicesOf builds the devices of tree. resourceName is the Multus resource name
// they carry; withTaints false withdraws an unhealthy VF instead of tainting it.
// A VF whose PCIe root cannot be read is published without that attribute, and
// the error says which.
func devicesOf(root sysfs.Root, tree deviceplugin.DeviceTree, resourceName string, withTaints bool) (Publication, error) {
	pub := Publication{VFs: map[string]*deviceplugin.Device{}}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(tree)) {
		for _, d := range tree[name].Devices {
			pub.VFs[DeviceName(d.ID)] = d
			if !d.Healthy && !withTaints {
				continue
			}
			dev, err := device(root, d, resourceName)
			if err != nil {
				errs = append(errs, err)
			}
			pub.Devices = append(pub.Devices, dev)
		}
	}
	slices.SortFunc(pub.Devices, func(a, b resourceapi.Device) int { return strings.Compare(a.Name, b.Name) })
	return pub, errors.Join(errs...)
}

// device is one VF as a device of a ResourceSlice.
func device(root sysfs.Root, d *deviceplugin.Device, resourceName string) (resourceapi.Device, error) {
	str := func(s string) resourceapi.DeviceAttribute { return resourceapi.DeviceAttribute{StringValue: ptr.To(s)} }
	num := func(n int) resourceapi.DeviceAttribute {
		return resourceapi.DeviceAttribute{IntValue: ptr.To(int64(n))}
	}
	attrs := map[resourceapi.QualifiedName]resourceapi.DeviceAttribute{
		AttrModel: str(d.Model), AttrChip: str(d.Chip), AttrPort: num(d.Port), AttrPF: str(d.PF),
		AttrVFIndex: num(d.VFIndex), AttrDriver: str(d.Driver), AttrLinkSpeed: num(d.LinkSpeed),
		AttrNUMANode: num(d.NUMANode), AttrDeviceID: str(d.ID), AttrResourceName: str(resourceName),
		deviceattribute.StandardDeviceAttributePCIBusID: str(d.ID),
	}
	if d.MgmtNetdev != "" {
		attrs[AttrMgmtNetdev] = str(d.MgmtNetdev)
	}
	if d.NUMANode >= 0 {
		attrs[deviceattribute.StandardDeviceAttributeNUMANode] = num(d.NUMANode)
	}
	var err error
	if a, rerr := deviceattribute.GetPCIeRootAttributeByPCIBusID(d.ID, deviceattribute.WithFSFromRoot(string(root))); rerr == nil {
		attrs[a.Name] = a.Value
	} else {
		err = fmt.Errorf("VF %s: published without %s: %w", d.ID, deviceattribute.StandardDeviceAttributePCIeRoot, rerr)
	}
	dev := resourceapi.Device{Name: DeviceName(d.ID), Attributes: attrs}
	if !d.Healthy {
		dev.Taints = []resourceapi.DeviceTaint{{Key: TaintKey, Value: taintValue(d), Effect: resourceapi.DeviceTaintEffectNoSchedule}}
	}
	return dev, err
}

// taintValue says in one word why d is unhealthy.
func taintValue(d *deviceplugin.Device) string {
	switch {
	case d.Stranded:
		return TaintStranded
	case strings.Contains(d.Reason, "link down"):
		return TaintLinkDown
	}
	return TaintUnhealthy
}

// slicesOf cuts devices into slices of at most maxSliceDevices.
func slicesOf(devices []resourceapi.Device) [][]resourceapi.Device {
	var out [][]resourceapi.Device
	for len(devices) > maxSliceDevices {
		out = append(out, devices[:maxSliceDevices])
		devices = devices[maxSliceDevices:]
	}
	return append(out, devices)
}
