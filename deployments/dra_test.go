package deployments_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/dynamic-resource-allocation/cel"
	"k8s.io/dynamic-resource-allocation/resourceslice"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/dra"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/emulate/sysfstree"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// What the DRA driver's DaemonSet (dra/daemonset.yaml) may do beyond the rest, and
// the served-by locks the device plugin and the DRA driver share: each writes its
// own locks, so both mount the directory read-write.
func init() {
	hostPathsOK["/run/chelsio-sriov/served-by"] = map[string]string{
		"chelsio-sriov-dp":  "its served-by locks, one per VF it offers, so that chelsio-sriov-dra never offers the same VF",
		"chelsio-sriov-dra": "its served-by locks, one per VF it offers, so that chelsio-sriov-dp never offers the same VF",
	}
	hostPathsOK["/var/lib/kubelet/plugins_registry"] = map[string]string{"chelsio-sriov-dra": "its registration socket, which kubelet finds there"}
	hostPathsOK["/var/lib/kubelet/plugins/vf.chelsio.com"] = map[string]string{"chelsio-sriov-dra": "its DRA socket and the checkpoint of prepared claims"}
	hostPathsOK["/var/run/cdi"] = map[string]string{"chelsio-sriov-dra": "a CDI spec per prepared claim, which the runtime reads"}
	hostPathsOK["/var/run/k8s.cni.cncf.io/devinfo/dp"]["chelsio-sriov-dra"] = "a Multus device-info file per prepared VF"
	hostPathsOK["/var/lib/cni/chelsio-sriov"]["chelsio-sriov-dra"] = ""
	hostPathsOK["/sys"]["chelsio-sriov-dra"] = ""
	hostNetworkOK["chelsio-sriov-dra"] = hostNetworkOK["chelsio-sriov-dp"]
	rootOK["chelsio-sriov-dra/chelsio-sriov-dra"] = "kubelet's plugin directories, /var/run/cdi and the device-info directory are root's"
}

// moreKinds are the kinds of deployments/dra that decode knows besides its own.
func moreKinds(kind string) any {
	switch kind {
	case "Component":
		return &kustomization{}
	case "ClusterRole":
		return &rbacv1.ClusterRole{}
	case "ClusterRoleBinding":
		return &rbacv1.ClusterRoleBinding{}
	case "DeviceClass":
		return &resourceapi.DeviceClass{}
	case "ResourceClaimTemplate":
		return &resourceapi.ResourceClaimTemplate{}
	case "ResourceClaim":
		return &resourceapi.ResourceClaim{}
	}
	return nil
}

// draDocs decodes the manifests of deployments/dra.
func draDocs(t *testing.T) []doc {
	t.Helper()
	var out []doc
	for _, d := range load(t) {
		if rel, _ := filepath.Rel("dra", d.file); !filepath.IsAbs(rel) && rel != "" && rel[0] != '.' {
			out = append(out, d)
		}
	}
	if len(out) == 0 {
		t.Fatal("no manifest under dra/")
	}
	return out
}

// publishedDevices are the devices the driver publishes for an emulated node of a
// T62100-CR (NUMA node 0) with VF1 of PF1 on vfio-pci and a T540-CR (NUMA node 1),
// each by its VF's PCI address, with the tree's VFs.
func publishedDevices(t *testing.T) (map[string]resourceapi.Device, []sysfstree.BuiltVF) {
	t.Helper()
	tree, err := sysfstree.Build(t.TempDir(), sysfstree.Options{},
		sysfstree.Adapter{Model: "T62100-CR", Bus: 0x81, NUMANode: 0, VFs: [4]int{2, 2, 1, 1}, Drivers: map[sysfstree.VFRef]string{{PF: 1, VF: 1}: vf.DriverVFIO}},
		sysfstree.Adapter{Model: "T540-CR", Bus: 0x83, NUMANode: 1, VFs: [4]int{1, 1, 1, 1}},
	)
	if err != nil {
		t.Fatal(err)
	}
	var vfs []sysfstree.BuiltVF
	for _, a := range tree.Adapters {
		for _, pf := range a.VFs {
			vfs = append(vfs, pf...)
		}
	}
	d := &dra.Driver{Root: tree.Root, Scanner: dra.NewScanner(tree.Root, dra.DefaultConfig(), nil, "", nil), NodeName: "n1", ResourceName: dra.DefaultResourceName, Taints: true}
	out := map[string]resourceapi.Device{}
	d.Rescan(context.Background(), func(_ context.Context, r resourceslice.DriverResources) error {
		for _, s := range r.Pools["n1"].Slices {
			for _, dev := range s.Devices {
				out[*dev.Attributes[dra.AttrDeviceID].StringValue] = dev
			}
		}
		return nil
	})
	if len(out) != len(vfs) {
		t.Fatalf("published %d devices for %d VFs", len(out), len(vfs))
	}
	return out, vfs
}

// selected returns the addresses of the devices that every expression selects.
func selected(t *testing.T, what string, devices map[string]resourceapi.Device, exprs []string) []string {
	t.Helper()
	var progs []cel.CompilationResult
	for _, e := range exprs {
		r := cel.GetCompiler(cel.Features{}).CompileCELExpression(e, cel.Options{})
		if r.Error != nil {
			t.Fatalf("%s: %q: %v", what, e, r.Error)
		}
		progs = append(progs, r)
	}
	var out []string
	for addr, d := range devices {
		all := true
		for _, p := range progs {
			ok, _, err := p.DeviceMatches(context.Background(), cel.Device{Driver: dra.DriverName, Attributes: d.Attributes})
			if err != nil {
				t.Fatalf("%s on %s: %v", what, addr, err)
			}
			all = all && ok
		}
		if all {
			out = append(out, addr)
		}
	}
	slices.Sort(out)
	return out
}

func exprsOf(sels []resourceapi.DeviceSelector) []string {
	var out []string
	for _, s := range sels {
		if s.CEL != nil {
			out = append(out, s.CEL.Expression)
		}
	}
	return out
}

// addrsWhere are the addresses of the VFs for which keep is true, sorted.
func addrsWhere(vfs []sysfstree.BuiltVF, keep func(sysfstree.BuiltVF) bool) []string {
	var out []string
	for _, v := range vfs {
		if keep(v) {
			out = append(out, v.Addr.String())
		}
	}
	slices.Sort(out)
	return out
}

// The CEL selectors of the shipped DeviceClasses and examples, read from their
// files, select exactly the VFs they are meant to among the published devices.
func TestDRASelectors(t *testing.T) {
	devices, vfs := publishedDevices(t)
	onDriver := func(drv string) func(sysfstree.BuiltVF) bool {
		return func(v sysfstree.BuiltVF) bool { return v.Driver == drv }
	}
	numa0 := map[string]bool{}
	for _, v := range vfs {
		numa0[v.Addr.String()] = v.Addr.Bus == 0x81
	}
	classes := map[string][]string{}
	want := map[string][]string{
		"chelsio-vf":           addrsWhere(vfs, func(sysfstree.BuiltVF) bool { return true }),
		"chelsio-vf-netdevice": addrsWhere(vfs, onDriver(vf.DriverCxgb4VF)),
		"chelsio-vf-vfio":      addrsWhere(vfs, onDriver(vf.DriverVFIO)),
		"chelsio-vf-extended":  addrsWhere(vfs, onDriver(vf.DriverCxgb4VF)),
		"chelsio-vf-numa0/vf": addrsWhere(vfs, func(v sysfstree.BuiltVF) bool {
			return v.Driver == vf.DriverCxgb4VF && numa0[v.Addr.String()]
		}),
		"chelsio-vf-two-ports/port0": addrsWhere(vfs, func(v sysfstree.BuiltVF) bool { return v.Driver == vf.DriverCxgb4VF && v.Port == 0 }),
		"chelsio-vf-two-ports/port1": addrsWhere(vfs, func(v sysfstree.BuiltVF) bool { return v.Driver == vf.DriverCxgb4VF && v.Port == 1 }),
	}
	got := map[string][]string{}
	docs := draDocs(t)
	for _, d := range docs {
		if c, ok := d.obj.(*resourceapi.DeviceClass); ok {
			classes[c.Name] = exprsOf(c.Spec.Selectors)
			got[c.Name] = selected(t, c.Name, devices, classes[c.Name])
		}
	}
	request := func(owner string, reqs []resourceapi.DeviceRequest) {
		for _, r := range reqs {
			if r.Exactly == nil {
				t.Fatalf("%s request %s: not an exact request", owner, r.Name)
			}
			exprs := append(slices.Clone(classes[r.Exactly.DeviceClassName]), exprsOf(r.Exactly.Selectors)...)
			got[owner+"/"+r.Name] = selected(t, owner+"/"+r.Name, devices, exprs)
		}
	}
	for _, d := range docs {
		switch o := d.obj.(type) {
		case *resourceapi.ResourceClaimTemplate:
			request(o.Name, o.Spec.Spec.Devices.Requests)
		case *resourceapi.ResourceClaim:
			request(o.Name, o.Spec.Devices.Requests)
			for _, c := range o.Spec.Devices.Constraints {
				for addr, dev := range devices {
					if _, has := dev.Attributes[resourceapi.QualifiedName(*c.MatchAttribute)]; c.MatchAttribute != nil && !has {
						t.Errorf("%s: constraint on %s, which %s lacks", o.Name, *c.MatchAttribute, addr)
					}
				}
			}
		}
	}
	for name, w := range want {
		if len(w) == 0 {
			t.Fatalf("%s: the fixture has no VF it should select", name)
		}
		if !slices.Equal(got[name], w) {
			t.Errorf("%s selects %v, want %v", name, got[name], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("selectors tested %d, want %d: %v", len(got), len(want), got)
	}
	for _, d := range docs {
		if c, ok := d.obj.(*resourceapi.DeviceClass); ok && c.Name == "chelsio-vf-extended" {
			if c.Spec.ExtendedResourceName == nil || *c.Spec.ExtendedResourceName != "chelsio.com/vf" {
				t.Errorf("chelsio-vf-extended: extendedResourceName %v, want chelsio.com/vf", c.Spec.ExtendedResourceName)
			}
		}
	}
}
