package dra

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/deviceplugin"
)

// CDIKind is the CDI kind of the devices Prepare returns.
const CDIKind = DriverName + "/vf"

// cdiSpec is a CDI spec file (CDI 0.6.0): one device per VF of a claim.
type cdiSpec struct {
	CDIVersion string      `json:"cdiVersion"`
	Kind       string      `json:"kind"`
	Devices    []cdiDevice `json:"devices"`
}

type cdiDevice struct {
	Name           string   `json:"name"`
	ContainerEdits cdiEdits `json:"containerEdits"`
}

type cdiEdits struct {
	Env         []string        `json:"env,omitempty"`
	DeviceNodes []cdiDeviceNode `json:"deviceNodes,omitempty"`
}

type cdiDeviceNode struct {
	Path        string `json:"path"`
	Permissions string `json:"permissions,omitempty"`
}

// CDISpecPath is the CDI spec file of a claim in dir.
func CDISpecPath(dir string, claim types.UID) string {
	return filepath.Join(dir, DriverName+"-"+string(claim)+".json")
}

// PrepareResourceClaims implements kubeletplugin.DRAPlugin: for each claim, a CDI
// spec with its VFs and a Multus device-info file per VF, recorded in the
// checkpoint before the answer. A claim prepared before (by this process or an
// earlier one) gets the same answer again.
func (d *Driver) PrepareResourceClaims(_ context.Context, claims []*resourceapi.ResourceClaim) (map[types.UID]kubeletplugin.PrepareResult, error) {
	d.prepMu.Lock()
	defer d.prepMu.Unlock()
	cp, err := readCheckpoint(d.CheckpointPath)
	if err != nil {
		return nil, err
	}
	out := map[types.UID]kubeletplugin.PrepareResult{}
	for _, c := range claims {
		pc, ok := cp.Claims[string(c.UID)]
		if !ok {
			pc, err = d.prepare(c, cp)
			if err != nil {
				out[c.UID] = kubeletplugin.PrepareResult{Err: err}
				continue
			}
			cp.Claims[string(c.UID)] = pc
			if err := cp.write(d.CheckpointPath); err != nil {
				_ = d.undo(pc) // the checkpoint error is the one to report
				delete(cp.Claims, string(c.UID))
				out[c.UID] = kubeletplugin.PrepareResult{Err: err}
				continue
			}
		}
		out[c.UID] = kubeletplugin.PrepareResult{Devices: resultOf(pc)}
	}
	return out, nil
}

// resultOf is what kubelet gets for a prepared claim.
func resultOf(pc preparedClaim) []kubeletplugin.Device {
	var out []kubeletplugin.Device
	for _, pd := range pc.Devices {
		out = append(out, kubeletplugin.Device{Requests: pd.Requests, PoolName: pd.Pool, DeviceName: pd.Device, CDIDeviceIDs: []string{pd.CDIDevice}})
	}
	return out
}

// prepare writes the files of one claim; on failure nothing is left behind.
func (d *Driver) prepare(c *resourceapi.ResourceClaim, cp *checkpoint) (preparedClaim, error) {
	pc := preparedClaim{Namespace: c.Namespace, Name: c.Name, CDISpec: CDISpecPath(d.CDIDir, c.UID)}
	vfs, err := d.allocated(c, cp)
	if err != nil {
		return pc, err
	}
	prefix, name, _ := strings.Cut(d.ResourceName, "/")
	edits, err := deviceplugin.ContainerEdits(prefix, name, vfs, "")
	if err != nil {
		return pc, fmt.Errorf("claim %s/%s: %w", c.Namespace, c.Name, err)
	}
	env := envList(edits.Envs)
	spec := cdiSpec{CDIVersion: "0.6.0", Kind: CDIKind}
	results := c.Status.Allocation.Devices.Results
	for i, r := range ownResults(results) {
		v := vfs[i]
		dev := cdiDevice{Name: string(c.UID) + "-" + r.Device, ContainerEdits: cdiEdits{Env: env}}
		if v.VFIO() {
			dev.ContainerEdits.DeviceNodes = []cdiDeviceNode{{Path: "/dev/vfio/vfio", Permissions: "rw"}, {Path: fmt.Sprintf("/dev/vfio/%d", v.IOMMUGroup), Permissions: "rw"}}
		}
		spec.Devices = append(spec.Devices, dev)
		pc.Devices = append(pc.Devices, preparedDevice{
			Requests: []string{r.Request}, Pool: r.Pool, Device: r.Device, PCIAddress: v.ID,
			CDIDevice: CDIKind + "=" + dev.Name, DeviceInfo: deviceplugin.DeviceInfoPath(d.DeviceInfoDir, d.ResourceName, v.ID),
		})
	}
	if err := d.writeFiles(pc, spec, vfs); err != nil {
		_ = d.undo(pc) // the write error is the one to report
		return pc, fmt.Errorf("claim %s/%s: %w", c.Namespace, c.Name, err)
	}
	return pc, nil
}

// writeFiles writes the device-info files and the CDI spec of a claim.
func (d *Driver) writeFiles(pc preparedClaim, spec cdiSpec, vfs []*deviceplugin.Device) error {
	if d.DeviceInfoDir != "" {
		for _, v := range vfs {
			if err := deviceplugin.WriteDeviceInfo(d.DeviceInfoDir, d.ResourceName, v); err != nil {
				return err
			}
		}
	}
	b, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(pc.CDISpec, b, 0o644)
}

// ownResults are the results of a claim's allocation that are this driver's.
func ownResults(results []resourceapi.DeviceRequestAllocationResult) []resourceapi.DeviceRequestAllocationResult {
	var out []resourceapi.DeviceRequestAllocationResult
	for _, r := range results {
		if r.Driver == DriverName {
			out = append(out, r)
		}
	}
	return out
}

// allocated returns the VFs of a claim's allocation that are this driver's,
// refusing a device of another node's pool, one this node does not offer, and one
// that another prepared claim holds.
func (d *Driver) allocated(c *resourceapi.ResourceClaim, cp *checkpoint) ([]*deviceplugin.Device, error) {
	if c.Status.Allocation == nil {
		return nil, fmt.Errorf("claim %s/%s is not allocated", c.Namespace, c.Name)
	}
	held := map[string]string{} // device name → claim that holds it
	for uid, pc := range cp.Claims {
		for _, pd := range pc.Devices {
			held[pd.Device] = pc.Namespace + "/" + pc.Name + " (" + uid + ")"
		}
	}
	var out []*deviceplugin.Device
	for _, r := range ownResults(c.Status.Allocation.Devices.Results) {
		if r.Pool != d.NodeName {
			return nil, fmt.Errorf("claim %s/%s: device %s is in pool %q, not this node's %q", c.Namespace, c.Name, r.Device, r.Pool, d.NodeName)
		}
		v, ok := d.vf(r.Device)
		if !ok {
			return nil, fmt.Errorf("claim %s/%s: device %s is not a VF this node offers", c.Namespace, c.Name, r.Device)
		}
		if h, ok := held[r.Device]; ok {
			return nil, fmt.Errorf("claim %s/%s: device %s is prepared for claim %s", c.Namespace, c.Name, r.Device, h)
		}
		out = append(out, v)
	}
	return out, nil
}

// envList is a CDI env list, sorted.
func envList(env map[string]string) []string {
	var out []string
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

// UnprepareResourceClaims implements kubeletplugin.DRAPlugin: the files of each
// claim are removed, then the claim leaves the checkpoint. A claim that is not
// prepared is already unprepared.
func (d *Driver) UnprepareResourceClaims(_ context.Context, claims []kubeletplugin.NamespacedObject) (map[types.UID]error, error) {
	d.prepMu.Lock()
	defer d.prepMu.Unlock()
	cp, err := readCheckpoint(d.CheckpointPath)
	if err != nil {
		return nil, err
	}
	out := map[types.UID]error{}
	for _, c := range claims {
		pc, ok := cp.Claims[string(c.UID)]
		if !ok {
			out[c.UID] = nil
			continue
		}
		if err := d.undo(pc); err != nil {
			out[c.UID] = err
			continue
		}
		delete(cp.Claims, string(c.UID))
		out[c.UID] = cp.write(d.CheckpointPath)
	}
	return out, nil
}

// undo removes the files of a claim; a file already gone is no error.
func (d *Driver) undo(pc preparedClaim) error {
	var errs []error
	rm := func(p string) {
		if p != "" {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	rm(pc.CDISpec)
	if d.DeviceInfoDir != "" {
		for _, pd := range pc.Devices {
			rm(pd.DeviceInfo)
		}
	}
	return errors.Join(errs...)
}

// HandleError implements kubeletplugin.DRAPlugin: errors of the background
// (publishing ResourceSlices) are logged; every one of them is recoverable.
func (d *Driver) HandleError(_ context.Context, err error, msg string) {
	d.log().Error(msg, "err", err)
}

// WatchHealthStatus implements kubeletplugin.DRAPlugin: health is published as
// device taints instead.
func (d *Driver) WatchHealthStatus(context.Context, chan<- kubeletplugin.DeviceHealthReport) error {
	return kubeletplugin.ErrHealthNotSupported
}
