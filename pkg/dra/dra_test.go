package dra_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/dynamic-resource-allocation/resourceslice"

	"github.com/chelsio-k8s/chelsio-sriov/internal/kubelettest"
	"github.com/chelsio-k8s/chelsio-sriov/internal/vftree"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/dra"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/emulate/sysfstree"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

const nodeName = "worker-1"

// waitFor is how long a test waits for something the driver does on its own.
const waitFor = 20 * time.Second

// fixture is vftree.TwoAdapters with every port cabled.
func fixture(t *testing.T) *sysfstree.Tree {
	t.Helper()
	tree := vftree.TwoAdapters(t)
	for _, a := range tree.Adapters {
		for _, p := range a.Ports {
			setCarrier(t, tree, p.Name, "1")
		}
	}
	return tree
}

func setCarrier(t *testing.T, tree *sysfstree.Tree, netdev, carrier string) {
	t.Helper()
	state := map[string]string{"1": "up", "0": "down"}[carrier]
	for attr, v := range map[string]string{"carrier": carrier, "operstate": state} {
		if err := tree.SetNetdevAttr(netdev, attr, v); err != nil {
			t.Fatal(err)
		}
	}
}

// node is a driver serving a tree, with the fake API server it publishes to and
// the directories it writes.
type node struct {
	tree                        *sysfstree.Tree
	client                      *fake.Clientset
	registry, plugins           string
	cdiDir, infoDir, checkpoint string
	taints                      bool
	stop                        func()
}

func newNode(t *testing.T, tree *sysfstree.Tree) *node {
	t.Helper()
	sock := kubelettest.ShortDir(t, "dra-")
	dir := t.TempDir()
	n := &node{
		tree: tree, client: fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName, UID: "node-uid"}}),
		registry: filepath.Join(sock, "registry"), plugins: filepath.Join(sock, "plugin"),
		cdiDir: filepath.Join(dir, "cdi"), infoDir: filepath.Join(dir, "devinfo"), checkpoint: filepath.Join(dir, "plugin", "checkpoint.json"),
		taints: true,
	}
	t.Cleanup(func() { n.halt() })
	return n
}

// start runs the driver until halt; each start is a new process's worth of state.
func (n *node) start(t *testing.T) {
	t.Helper()
	d := &dra.Driver{
		Root: n.tree.Root, Scanner: dra.NewScanner(n.tree.Root, dra.DefaultConfig(), nil, "", nil),
		NodeName: nodeName, ResourceName: dra.DefaultResourceName, Taints: n.taints, Interval: 50 * time.Millisecond,
		CDIDir: n.cdiDir, DeviceInfoDir: n.infoDir, CheckpointPath: n.checkpoint,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx, n.client, dra.Sockets{RegistryDir: n.registry, PluginDir: n.plugins}) }()
	n.stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}
}

func (n *node) halt() {
	if n.stop != nil {
		n.stop()
		n.stop = nil
	}
}

// published lists the devices of the driver's ResourceSlices, by name.
func (n *node) published(t *testing.T) map[string]resourceapi.Device {
	t.Helper()
	list, err := n.client.ResourceV1().ResourceSlices().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]resourceapi.Device{}
	for _, s := range list.Items {
		if s.Spec.Driver != dra.DriverName || s.Spec.Pool.Name != nodeName || s.Spec.NodeName == nil || *s.Spec.NodeName != nodeName {
			t.Errorf("slice %s: driver %s, pool %s, node %v", s.Name, s.Spec.Driver, s.Spec.Pool.Name, s.Spec.NodeName)
			continue
		}
		for _, d := range s.Spec.Devices {
			out[d.Name] = d
		}
	}
	return out
}

// waitPublished polls the API server until cond holds of the published devices.
func (n *node) waitPublished(t *testing.T, what string, cond func(map[string]resourceapi.Device) string) map[string]resourceapi.Device {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		got := n.published(t)
		problem := cond(got)
		if problem == "" {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s", what, problem)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wantVF is a VF of the tree, as the test expects it published.
type wantVF struct {
	addr vf.PCIAddr
	b    *sysfstree.BuiltAdapter
	pf   int
	k    int
}

// boundVFs are the VFs of the tree that are bound to a driver.
func boundVFs(tree *sysfstree.Tree) []wantVF {
	var out []wantVF
	for i := range tree.Adapters {
		b := tree.Adapters[i]
		for pf := range b.VFs {
			for k, v := range b.VFs[pf] {
				if v.Driver != "" {
					out = append(out, wantVF{addr: v.Addr, b: b, pf: pf, k: k})
				}
			}
		}
	}
	return out
}

// attrs is what the test expects of a VF's attributes, read from the tree.
func (w wantVF) attrs(t *testing.T, root sysfs.Root) map[string]string {
	t.Helper()
	v := w.b.VFs[w.pf][w.k]
	link, err := filepath.EvalSymlinks(root.Path("bus/pci/devices/" + v.Addr.String()))
	if err != nil {
		t.Fatal(err)
	}
	rel, _ := filepath.Rel(root.Path("devices"), link)
	numa := itoa(w.b.Spec.NUMANode)
	return map[string]string{
		"chelsio.com/model": w.b.Product.Model, "chelsio.com/chip": string(w.b.Product.Chip),
		"chelsio.com/port": itoa(v.Port), "chelsio.com/pf": w.b.PFs[w.pf].String(), "chelsio.com/vfIndex": itoa(w.k),
		"chelsio.com/driver": v.Driver, "chelsio.com/linkSpeed": itoa(w.b.Product.PortSpeedMbps()),
		"chelsio.com/numaNode": numa, "chelsio.com/mgmtNetdev": w.b.Mgmt[w.pf],
		"resource.kubernetes.io/pciBusID": v.Addr.String(), "resource.kubernetes.io/pcieRoot": strings.Split(rel, "/")[0],
		"resource.kubernetes.io/numaNode": numa,
		"k8s.cni.cncf.io/deviceID":        v.Addr.String(), "k8s.cni.cncf.io/resourceName": dra.DefaultResourceName,
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// sameDevices is a waitPublished condition: exactly the VFs of want, each with
// every attribute and the taints of taint.
func sameDevices(t *testing.T, root sysfs.Root, want []wantVF, taint func(wantVF) string) func(map[string]resourceapi.Device) string {
	return func(got map[string]resourceapi.Device) string {
		var problems []string
		for _, w := range want {
			name := dra.DeviceName(w.addr.String())
			d, ok := got[name]
			if !ok {
				problems = append(problems, name+" is not published")
				continue
			}
			if g, e := kubelettest.AttributeStrings(d), w.attrs(t, root); !mapsEqual(g, e) {
				problems = append(problems, name+": attributes "+describe(g)+", want "+describe(e))
			}
			if g, e := taintOf(d), taint(w); g != e {
				problems = append(problems, name+": taint "+g+", want "+e)
			}
		}
		if len(got) != len(want) {
			problems = append(problems, "published "+itoa(len(got))+" devices, want "+itoa(len(want)))
		}
		return strings.Join(problems, "; ")
	}
}

func taintOf(d resourceapi.Device) string {
	var out []string
	for _, t := range d.Taints {
		out = append(out, t.Key+"="+t.Value+":"+string(t.Effect))
	}
	return strings.Join(out, ",")
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func describe(m map[string]string) string {
	var kv []string
	for k, v := range m {
		kv = append(kv, k+"="+v)
	}
	slices.Sort(kv)
	return "{" + strings.Join(kv, " ") + "}"
}

func noTaint(wantVF) string { return "" }

// startPublished starts a driver on the fixture and waits until it has published
// every bound VF, untainted.
func startPublished(t *testing.T) (*sysfstree.Tree, *node, []wantVF) {
	t.Helper()
	tree := fixture(t)
	n := newNode(t, tree)
	n.start(t)
	want := boundVFs(tree)
	n.waitPublished(t, "every bound VF", sameDevices(t, tree.Root, want, noTaint))
	return tree, n, want
}

// The published ResourceSlices list every bound VF with every attribute; a port
// whose link goes down taints its VFs, and its link back lifts the taint.
func TestResourceSlices(t *testing.T) {
	tree, n, want := startPublished(t)

	port := tree.Adapters[0].Ports[1]
	setCarrier(t, tree, port.Name, "0")
	down := func(w wantVF) string {
		if w.b == tree.Adapters[0] && w.b.VFs[w.pf][w.k].Port == 1 {
			return dra.TaintKey + "=" + dra.TaintLinkDown + ":NoSchedule"
		}
		return ""
	}
	n.waitPublished(t, "port 1 of the T6 down", sameDevices(t, tree.Root, want, down))
	setCarrier(t, tree, port.Name, "1")
	n.waitPublished(t, "port 1 of the T6 up again", sameDevices(t, tree.Root, want, noTaint))
}

// With taints off, a VF whose port is down is withdrawn instead.
func TestResourceSlicesWithoutTaints(t *testing.T) {
	tree := fixture(t)
	n := newNode(t, tree)
	n.taints = false
	setCarrier(t, tree, tree.Adapters[1].Ports[0].Name, "0")
	n.start(t)
	var want []wantVF
	for _, w := range boundVFs(tree) {
		if w.b != tree.Adapters[1] || w.b.VFs[w.pf][w.k].Port != 0 {
			want = append(want, w)
		}
	}
	n.waitPublished(t, "the VFs of the T5's port 0 withdrawn", sameDevices(t, tree.Root, want, noTaint))
}

// claim is an allocated ResourceClaim of this driver's devices, one request each.
func claim(name, uid string, devices ...string) *resourceapi.ResourceClaim {
	c := &resourceapi.ResourceClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID(uid)}}
	alloc := &resourceapi.AllocationResult{}
	for i, d := range devices {
		alloc.Devices.Results = append(alloc.Devices.Results, resourceapi.DeviceRequestAllocationResult{
			Request: "vf" + itoa(i), Driver: dra.DriverName, Pool: nodeName, Device: d,
		})
	}
	c.Status.Allocation = alloc
	return c
}

// TestHealthy: /healthz's answer is 503 until the first publish, 503 with the
// reason after a failed one, and 200 once a publish succeeds again.
func TestHealthy(t *testing.T) {
	tree := fixture(t)
	d := &dra.Driver{
		Root: tree.Root, Scanner: dra.NewScanner(tree.Root, dra.DefaultConfig(), nil, "", nil),
		NodeName: nodeName, ResourceName: dra.DefaultResourceName, Taints: true,
	}
	if err := d.Healthy(); err == nil || !strings.Contains(err.Error(), "no ResourceSlice published yet") {
		t.Errorf("Healthy() before any publish = %v", err)
	}
	fail := func(context.Context, resourceslice.DriverResources) error {
		return errors.New("the API server said no")
	}
	d.Rescan(context.Background(), fail)
	if err := d.Healthy(); err == nil || !strings.Contains(err.Error(), "publish ResourceSlices: the API server said no") {
		t.Errorf("Healthy() after a failed publish = %v", err)
	}
	var got int
	ok := func(_ context.Context, r resourceslice.DriverResources) error {
		got = len(r.Pools[nodeName].Slices[0].Devices)
		return nil
	}
	d.Rescan(context.Background(), ok)
	if err := d.Healthy(); err != nil || got == 0 {
		t.Errorf("Healthy() after publishing %d devices = %v", got, err)
	}
}
