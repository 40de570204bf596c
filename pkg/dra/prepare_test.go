package dra_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	drapb "k8s.io/kubelet/pkg/apis/dra/v1"

	"github.com/chelsio-k8s/chelsio-sriov/internal/kubelettest"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/deviceplugin"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/dra"
)

// register is the test kubelet registering the driver through the plugin registry.
func (n *node) register(t *testing.T) *kubelettest.DRAPlugin {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	p, err := kubelettest.RegisterDRA(ctx, n.registry, dra.DriverName)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// create stores claims in the API server, where the driver's helper reads them.
func (n *node) create(t *testing.T, claims ...*resourceapi.ResourceClaim) {
	t.Helper()
	for _, c := range claims {
		if _, err := n.client.ResourceV1().ResourceClaims(c.Namespace).Create(context.Background(), c, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

func ref(c *resourceapi.ResourceClaim) kubelettest.DRAClaim {
	return kubelettest.DRAClaim{Namespace: c.Namespace, Name: c.Name, UID: string(c.UID)}
}

// cdiSpec is the part of a CDI spec the test reads.
type cdiSpec struct {
	Kind    string `json:"kind"`
	Devices []struct {
		Name           string `json:"name"`
		ContainerEdits struct {
			Env         []string `json:"env"`
			DeviceNodes []struct {
				Path string `json:"path"`
			} `json:"deviceNodes"`
		} `json:"containerEdits"`
	} `json:"devices"`
}

// checkPrepared checks the CDI spec and device-info files of a claim of a
// cxgb4vf VF and a vfio-pci VF, against the CDI device IDs kubelet got.
func (n *node) checkPrepared(t *testing.T, c *resourceapi.ResourceClaim, ids []string, netAddr, vfioAddr string, group int) {
	t.Helper()
	b, err := os.ReadFile(dra.CDISpecPath(n.cdiDir, c.UID))
	if err != nil {
		t.Fatalf("CDI spec: %v", err)
	}
	var spec cdiSpec
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	env := deviceplugin.EnvName("chelsio.com", "chelsio_sriov_netdevice") + "=" + netAddr + "," + vfioAddr
	var gotIDs []string
	for i, d := range spec.Devices {
		gotIDs = append(gotIDs, spec.Kind+"="+d.Name)
		if !slices.Contains(d.ContainerEdits.Env, env) {
			t.Errorf("CDI device %s: env %v lacks %s", d.Name, d.ContainerEdits.Env, env)
		}
		var nodes []string
		for _, dn := range d.ContainerEdits.DeviceNodes {
			nodes = append(nodes, dn.Path)
		}
		want := []string(nil)
		if i == 1 {
			want = []string{"/dev/vfio/vfio", "/dev/vfio/" + itoa(group)}
		}
		if !slices.Equal(nodes, want) {
			t.Errorf("CDI device %s: device nodes %v, want %v", d.Name, nodes, want)
		}
	}
	if !slices.Equal(gotIDs, ids) {
		t.Errorf("kubelet got CDI devices %v; the spec defines %v", ids, gotIDs)
	}
	for _, a := range []string{netAddr, vfioAddr} {
		b, err := os.ReadFile(deviceplugin.DeviceInfoPath(n.infoDir, dra.DefaultResourceName, a))
		if err != nil {
			t.Fatalf("device-info of %s: %v", a, err)
		}
		if !strings.Contains(string(b), `"pci-address":"`+a+`"`) {
			t.Errorf("device-info of %s: %s", a, b)
		}
	}
}

// gone checks that nothing of a claim is left.
func (n *node) gone(t *testing.T, c *resourceapi.ResourceClaim, addrs ...string) {
	t.Helper()
	for _, p := range append([]string{dra.CDISpecPath(n.cdiDir, c.UID)}, infoPaths(n.infoDir, addrs)...) {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s is left after unprepare (%v)", p, err)
		}
	}
}

func infoPaths(dir string, addrs []string) []string {
	var out []string
	for _, a := range addrs {
		out = append(out, deviceplugin.DeviceInfoPath(dir, dra.DefaultResourceName, a))
	}
	return out
}

func cdiIDs(t *testing.T, resp map[string]*drapb.NodePrepareResourceResponse, uid types.UID) []string {
	t.Helper()
	r := resp[string(uid)]
	if r == nil || r.Error != "" {
		t.Fatalf("prepare of %s: %+v", uid, r)
	}
	var ids []string
	for _, d := range r.Devices {
		ids = append(ids, d.CdiDeviceIds...)
	}
	return ids
}

// The test kubelet registers the driver through the plugin registry and prepares
// a claim of a cxgb4vf VF and a vfio-pci VF over the DRA socket; the driver is
// restarted between prepare and unprepare, and the unprepare still removes
// everything the prepare wrote.
func TestPrepareRestartUnprepare(t *testing.T) {
	tree, n, _ := startPublished(t)
	k := n.register(t)

	netAddr, vfioAddr := tree.Adapters[0].VFs[0][0].Addr.String(), tree.Adapters[0].VFs[1][1].Addr.String()
	group := iommuGroup(t, tree.Root.Path("bus/pci/devices/"+vfioAddr+"/iommu_group"))
	c := claim("two", "uid-two", dra.DeviceName(netAddr), dra.DeviceName(vfioAddr))
	n.create(t, c)
	ctx := context.Background()
	resp, err := k.Prepare(ctx, ref(c))
	if err != nil {
		t.Fatal(err)
	}
	ids := cdiIDs(t, resp, c.UID)
	n.checkPrepared(t, c, ids, netAddr, vfioAddr, group)

	again, err := k.Prepare(ctx, ref(c))
	if err != nil {
		t.Fatal(err)
	}
	if got := cdiIDs(t, again, c.UID); !slices.Equal(got, ids) {
		t.Errorf("a second prepare answers %v, the first %v", got, ids)
	}

	n.halt()
	n.start(t)
	k = n.register(t)
	out, err := k.Unprepare(ctx, ref(c))
	if err != nil {
		t.Fatal(err)
	}
	if r := out[string(c.UID)]; r == nil || r.Error != "" {
		t.Fatalf("unprepare after a restart: %+v", r)
	}
	n.gone(t, c, netAddr, vfioAddr)
	if out, err := k.Unprepare(ctx, ref(c)); err != nil || out[string(c.UID)].GetError() != "" {
		t.Errorf("a second unprepare: %v, %+v", err, out)
	}
}

// A claim of a device this node does not offer, of another node's pool, or of a
// VF another prepared claim holds is refused with a message naming it, and
// leaves nothing behind.
func TestPrepareRefusals(t *testing.T) {
	tree, n, _ := startPublished(t)
	k := n.register(t)
	addr := tree.Adapters[0].VFs[0][0].Addr.String()
	held := claim("held", "uid-held", dra.DeviceName(addr))
	unbound := claim("unbound", "uid-unbound", dra.DeviceName(tree.Adapters[1].VFs[2][0].Addr.String()))
	other := claim("other", "uid-other", dra.DeviceName(addr))
	other.Status.Allocation.Devices.Results[0].Pool = "worker-2"
	twice := claim("twice", "uid-twice", dra.DeviceName(addr))
	n.create(t, held, unbound, other, twice)
	ctx := context.Background()
	if _, err := k.Prepare(ctx, ref(held)); err != nil {
		t.Fatal(err)
	}
	for c, want := range map[*resourceapi.ResourceClaim]string{
		unbound: "is not a VF this node offers", other: `is in pool "worker-2"`, twice: "is prepared for claim ns/held",
	} {
		resp, err := k.Prepare(ctx, ref(c))
		if err != nil {
			t.Fatal(err)
		}
		if got := resp[string(c.UID)].GetError(); !strings.Contains(got, want) {
			t.Errorf("prepare of %s: error %q, want one with %q", c.Name, got, want)
		}
		if _, err := os.Stat(dra.CDISpecPath(n.cdiDir, c.UID)); !os.IsNotExist(err) {
			t.Errorf("refused claim %s left its CDI spec (%v)", c.Name, err)
		}
	}
}

func iommuGroup(t *testing.T, link string) int {
	t.Helper()
	dst, err := os.Readlink(link)
	if err != nil {
		t.Fatal(err)
	}
	g, err := strconv.Atoi(filepath.Base(dst))
	if err != nil {
		t.Fatal(err)
	}
	return g
}
