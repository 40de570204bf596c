package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/chelsio-k8s/chelsio-sriov/internal/kubelettest"
	"github.com/chelsio-k8s/chelsio-sriov/internal/roottest"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/deviceplugin"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/dra"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/emulate"
)

// TestPrivilegedDRASlicesFollowVFCount runs the DRA driver on worker 1 of an
// emulated node, with a rescan only once an hour: the emulator's uevents, heard in
// the worker's namespace, are all that tells it of `chelsio-vf setup` changing
// PF0's VF count. The ResourceSlices in a fake API server list every VF with its
// attributes, then PF0's first 2 VFs only, then all of them again.
func TestPrivilegedDRASlicesFollowVFCount(t *testing.T) {
	roottest.Require(t)
	d := upDPNode(t, "--vfs", "4")
	client := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w1", UID: "w1-uid"}})
	ctx, cancel := context.WithCancel(context.Background())
	root := d.worker.Root()
	u, err := deviceplugin.WatchUeventsAt(ctx, d.worker.NetnsPath(), root, nil)
	if err != nil {
		t.Fatal(err)
	}
	drv := &dra.Driver{
		Root: root, Scanner: dra.NewScanner(root, dra.DefaultConfig(), nil, "", nil), NodeName: "w1",
		ResourceName: dra.DefaultResourceName, Taints: true, Interval: time.Hour, Triggers: []<-chan struct{}{u.Changed()},
		CDIDir: filepath.Join(t.TempDir(), "cdi"), CheckpointPath: filepath.Join(t.TempDir(), "checkpoint.json"),
	}
	sock := kubelettest.ShortDir(t, "dra-")
	done := make(chan error, 1)
	go func() {
		done <- drv.Serve(ctx, client, dra.Sockets{RegistryDir: filepath.Join(sock, "r"), PluginDir: filepath.Join(sock, "p")})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})

	all := d.worker.VFs
	waitSlices(t, client, "every VF", all)
	if out, errb, err := d.setup(1, "--pf", "0", "--vfs", "2"); err != nil {
		t.Fatalf("setup --vfs 2: %v\n%s%s", err, out, errb)
	}
	start := time.Now()
	waitSlices(t, client, "PF0's first 2 VFs only", slices.DeleteFunc(slices.Clone(all), func(v emulate.VF) bool { return v.PF == 0 && v.Index >= 2 }))
	t.Logf("VFs removed: the slices followed %v after setup returned", time.Since(start).Round(time.Millisecond))
	if out, errb, err := d.setup(1, "--pf", "0", "--vfs", "4"); err != nil {
		t.Fatalf("setup --vfs 4: %v\n%s%s", err, out, errb)
	}
	start = time.Now()
	waitSlices(t, client, "every VF again", all)
	t.Logf("VFs added: the slices followed %v after setup returned", time.Since(start).Round(time.Millisecond))
}

// waitSlices polls the fake API server until the driver's slices list exactly
// want, each with the attributes the emulated node gives it. The emulated tree's
// links are absolute, which the PCIe root reader of Kubernetes does not follow:
// pkg/dra's tests check resource.kubernetes.io/pcieRoot on a tree with the
// kernel's relative links.
func waitSlices(t *testing.T, client *fake.Clientset, what string, want []emulate.VF) {
	t.Helper()
	eventually(t, what, dpWait, func() (bool, string) {
		list, err := client.ResourceV1().ResourceSlices().List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		got := map[string]map[string]string{}
		for _, s := range list.Items {
			for _, dev := range s.Spec.Devices {
				got[dev.Name] = kubelettest.AttributeStrings(dev)
			}
		}
		if len(got) != len(want) {
			return false, fmt.Sprintf("%d devices, want %d: %v", len(got), len(want), got)
		}
		for _, v := range want {
			a, ok := got[dra.DeviceName(v.Addr.String())]
			if !ok {
				return false, fmt.Sprintf("%s is not published", v.Addr)
			}
			for k, w := range map[string]string{
				"k8s.cni.cncf.io/deviceID": v.Addr.String(), "resource.kubernetes.io/pciBusID": v.Addr.String(),
				"chelsio.com/port": strconv.Itoa(v.Port), "chelsio.com/vfIndex": strconv.Itoa(v.Index), "chelsio.com/driver": "cxgb4vf",
				"k8s.cni.cncf.io/resourceName": dra.DefaultResourceName,
			} {
				if a[k] != w {
					return false, fmt.Sprintf("%s: %s = %q, want %q (all: %v)", v.Addr, k, a[k], w, a)
				}
			}
			for _, k := range []string{"chelsio.com/model", "chelsio.com/chip", "chelsio.com/pf", "chelsio.com/linkSpeed", "chelsio.com/numaNode", "chelsio.com/mgmtNetdev"} {
				if a[k] == "" {
					return false, fmt.Sprintf("%s has no %s (all: %v)", v.Addr, k, a)
				}
			}
		}
		return true, ""
	})
}
