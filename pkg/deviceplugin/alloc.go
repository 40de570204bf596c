package deviceplugin

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// EnvName returns the variable Allocate sets for a resource, as sriov-dp does:
// PCIDEVICE_<PREFIX>_<NAME>, upper-cased, every character outside [A-Z0-9] as '_'.
func EnvName(prefix, name string) string {
	up := strings.ToUpper("PCIDEVICE_" + prefix + "_" + name)
	return strings.Map(func(r rune) rune {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			return r
		}
		return '_'
	}, up)
}

// vfioDevice is the device node of the VFIO container, shared by every group.
const vfioDevice = "/dev/vfio/vfio"

// containerResponse builds one container's allocation, and writes the device-info
// files of its devices.
func (m *Manager) containerResponse(res *Resource, devs []*Device) (*pluginapi.ContainerAllocateResponse, error) {
	car, err := ContainerEdits(res.Prefix, res.Name, devs, m.CDIKind)
	if err != nil {
		return nil, err
	}
	for _, d := range devs {
		if err := m.writeDeviceInfo(res, d); err != nil {
			return nil, err
		}
	}
	return car, nil
}

// ContainerEdits is what a container that gets devs of the resource prefix/name
// needs: PCIDEVICE_<PREFIX>_<NAME> (EnvName) with the devices' PCI addresses, its
// _INFO, and for vfio-pci VFs /dev/vfio/vfio, /dev/vfio/<group> and, with cdiKind,
// their CDI names.
func ContainerEdits(prefix, name string, devs []*Device, cdiKind string) (*pluginapi.ContainerAllocateResponse, error) {
	env := EnvName(prefix, name)
	ids := make([]string, len(devs))
	info := map[string]map[string]any{}
	car := &pluginapi.ContainerAllocateResponse{Envs: map[string]string{}}
	vfio := false
	for i, d := range devs {
		ids[i] = d.ID
		di := map[string]any{"generic": map[string]string{"deviceID": d.ID}}
		if d.VFIO() {
			if d.IOMMUGroup < 0 {
				return nil, fmt.Errorf("device %s is on vfio-pci but has no IOMMU group: turn the IOMMU on (chelsio-vf doctor says how)", d.ID)
			}
			group := "/dev/vfio/" + strconv.Itoa(d.IOMMUGroup)
			di["vfio"] = map[string]string{"mount": vfioDevice, "dev-mount": group}
			car.Devices = append(car.Devices, &pluginapi.DeviceSpec{ContainerPath: group, HostPath: group, Permissions: "rw"})
			if cdiKind != "" {
				car.CdiDevices = append(car.CdiDevices, &pluginapi.CDIDevice{Name: cdiKind + "=" + cdiName(d.ID)})
			}
			vfio = true
		}
		if len(d.Extra) > 0 {
			di["extra"] = d.Extra
		}
		info[d.ID] = di
	}
	if vfio {
		car.Devices = append([]*pluginapi.DeviceSpec{{ContainerPath: vfioDevice, HostPath: vfioDevice, Permissions: "rw"}}, car.Devices...)
	}
	car.Envs[env] = strings.Join(ids, ",")
	b, err := json.Marshal(info)
	if err != nil {
		return nil, err
	}
	car.Envs[env+"_INFO"] = string(b)
	return car, nil
}

// cdiName is a VF's CDI device name: its PCI address with ':' as '-'.
func cdiName(id string) string { return strings.ReplaceAll(id, ":", "-") }

// deviceInfo is the Multus device-info file (spec 1.1.0) of one VF.
type deviceInfo struct {
	Type    string            `json:"type"`
	Version string            `json:"version"`
	PCI     deviceInfoPCI     `json:"pci"`
	Extra   map[string]string `json:"extra,omitempty"`
}

type deviceInfoPCI struct {
	PCIAddress        string `json:"pci-address"`
	PFPCIAddress      string `json:"pf-pci-address,omitempty"`
	RepresentorDevice string `json:"representor-device,omitempty"`
}

// DeviceInfoPath is where Multus looks for a device's information:
// <dir>/<prefix>-<name>-<pci address>-device.json (resource name '/' as '-').
func DeviceInfoPath(dir, fullName, id string) string {
	return filepath.Join(dir, strings.ReplaceAll(fullName, "/", "-")+"-"+id+"-device.json")
}

func (m *Manager) writeDeviceInfo(res *Resource, d *Device) error {
	if m.DeviceInfoDir == "" {
		return nil
	}
	m.devInfoMu.Lock() // not removed by devInfoGC between its check and its removal
	defer m.devInfoMu.Unlock()
	return WriteDeviceInfo(m.DeviceInfoDir, res.FullName(), d)
}

// WriteDeviceInfo writes the Multus device-info file of d, offered as the resource
// fullName, under dir (DeviceInfoPath), replacing it whole.
func WriteDeviceInfo(dir, fullName string, d *Device) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("device-info dir: %w", err)
	}
	b, err := json.Marshal(deviceInfo{Type: "pci", Version: "1.1.0", PCI: deviceInfoPCI{PCIAddress: d.ID, PFPCIAddress: d.PF}, Extra: d.Extra})
	if err != nil {
		return err
	}
	p := DeviceInfoPath(dir, fullName, d.ID)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write device-info: %w", err)
	}
	return os.Rename(tmp, p)
}

// Allocation policies of GetPreferredAllocation.
const (
	PolicySpread = "spread" // across physical ports
	PolicyPack   = "pack"   // fill one port first
)

// preferred picks size devices: every must-include one, then, among the available
// healthy ones, those on the NUMA node of the must-includes (or, without any, the
// node with the most available devices), spread across physical ports (or packed
// on one); ties go to the lower PCI address.
func preferred(res *Resource, available, must []string, size int, policy string) []string {
	chosen := []string{}
	taken := map[string]bool{}
	for _, id := range must {
		if !taken[id] {
			chosen, taken[id] = append(chosen, id), true
		}
	}
	var cands []*Device
	for _, id := range available {
		if d, ok := res.Devices[id]; ok && !taken[id] && d.Healthy {
			cands = append(cands, d)
		}
	}
	if len(chosen) >= size || len(cands) == 0 {
		return chosen[:min(len(chosen), max(size, len(must)))]
	}
	// The NUMA node to prefer.
	numa := -1
	for _, id := range must {
		if d, ok := res.Devices[id]; ok && d.NUMANode >= 0 {
			numa = d.NUMANode
			break
		}
	}
	if numa < 0 {
		count := map[int]int{}
		for _, d := range cands {
			count[d.NUMANode]++
		}
		best := -1
		for n, c := range count {
			if best < 0 || c > count[best] || (c == count[best] && n < best) {
				best = n
			}
		}
		numa = best
	}
	// Port load so far, for spreading.
	used := map[string]int{}
	portKey := func(d *Device) string { return d.Adapter + "/" + strconv.Itoa(d.Port) }
	for _, id := range chosen {
		if d, ok := res.Devices[id]; ok {
			used[portKey(d)]++
		}
	}
	for len(chosen) < size && len(cands) > 0 {
		slices.SortFunc(cands, func(a, b *Device) int {
			if an, bn := a.NUMANode == numa, b.NUMANode == numa; an != bn {
				if an {
					return -1
				}
				return 1
			}
			ua, ub := used[portKey(a)], used[portKey(b)]
			if ua != ub {
				if policy == PolicyPack {
					return cmp.Compare(ub, ua)
				}
				return cmp.Compare(ua, ub)
			}
			return strings.Compare(a.ID, b.ID)
		})
		d := cands[0]
		cands = cands[1:]
		chosen = append(chosen, d.ID)
		used[portKey(d)]++
	}
	return chosen
}
