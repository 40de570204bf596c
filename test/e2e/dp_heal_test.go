package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chelsio-k8s/chelsio-sriov/internal/kubelettest"
	"github.com/chelsio-k8s/chelsio-sriov/internal/roottest"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/cnistore"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/emulate"
)

// TestPrivilegedDPStrandedVF moves a VF's netdev into a namespace the test made,
// with no CNI attachment recording it, as a crashed or foreign tool leaves it: kubelet
// sees it Unhealthy. Recorded in the CNI state, it is healthy; the record gone, it
// is Unhealthy again; back in the worker's namespace, it is healthy.
func TestPrivilegedDPStrandedVF(t *testing.T) {
	roottest.Require(t)
	d := upDPNode(t, "--vfs", "8")
	d.startDP(t, "")
	d.wait(t, "8 healthy VFs", listedHealth("chelsio.com/vf", d.vfHealth(nil)))

	addr := d.worker.VFs[0].Addr.String()
	name, ok := netdevOf(d.list(1), addr)
	if !ok || name == "" {
		t.Fatalf("VF %s has no netdev in worker 1", addr)
	}
	isAddr := func(v emulate.VF) bool { return v.Addr.String() == addr }
	pod := newPod(t)
	moveLinkNS(t, d.workerNS(1), name, pod)
	d.wait(t, addr+" unhealthy, stranded", listedHealth("chelsio.com/vf", d.vfHealth(isAddr)))
	d.dp.waitLog(t, "VF stranded", addr)
	wantMetrics(t, "stranded", d.metrics(t), `chelsio_sriov_dp_stranded_vfs{resource="chelsio.com/vf"} 1`)

	store := cnistore.Store{Dir: d.stateDir}
	if err := store.Ensure(); err != nil {
		t.Fatal(err)
	}
	a := &cnistore.Attachment{ContainerID: "pod-a", IfName: "net1", Netns: pod.Path(), VF: addr, Phase: cnistore.PhaseAttached, Created: time.Now()}
	if err := store.SaveAttachment(a); err != nil {
		t.Fatal(err)
	}
	d.wait(t, addr+" healthy: an attachment records it", listedHealth("chelsio.com/vf", d.vfHealth(nil)))
	d.dp.waitLog(t, "VF no longer stranded", addr, "a CNI attachment records it")

	if err := store.RemoveAttachment("pod-a", "net1", addr); err != nil {
		t.Fatal(err)
	}
	d.wait(t, addr+" unhealthy again: the record is gone", listedHealth("chelsio.com/vf", d.vfHealth(isAddr)))

	moveLinkNS(t, pod, name, d.workerNS(1))
	d.wait(t, addr+" healthy: home", listedHealth("chelsio.com/vf", d.vfHealth(nil)))
	d.dp.waitLog(t, "VF no longer stranded", addr, "its netdev is in the node")
	wantMetrics(t, "home", d.metrics(t), `chelsio_sriov_dp_stranded_vfs{resource="chelsio.com/vf"} 0`)
}

// TestPrivilegedDPDeviceInfoRemoved: two pods hold a VF each, as kubelet's
// pod-resources API says; once it no longer lists one of them, that pod's
// device-info file goes after the grace, and the other pod's stays.
func TestPrivilegedDPDeviceInfoRemoved(t *testing.T) {
	roottest.Require(t)
	d := upDPNode(t, "--vfs", "8")
	pr, err := kubelettest.StartPodResources(d.podSocket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pr.Close)
	const res = "chelsio.com/vf"
	ids := d.vfIDs()[:2]
	holds := func(pod, id string) kubelettest.PodDevices {
		return kubelettest.PodDevices{Namespace: "default", Name: pod, Containers: map[string]map[string][]string{"app": {res: {id}}}}
	}
	pr.Set(holds("pod-a", ids[0]), holds("pod-b", ids[1]))
	d.startDP(t, "", "--device-info-grace", "500ms")
	d.wait(t, "8 healthy VFs", listedHealth(res, d.vfHealth(nil)))
	files := map[string]string{}
	for i, pod := range []string{"pod-a", "pod-b"} {
		if _, err := d.kubelet.AdmitDevices(context.Background(), pod, "app", res, ids[i]); err != nil {
			t.Fatalf("admit %s: %v", pod, err)
		}
		files[pod] = filepath.Join(d.infoDir, "chelsio.com-vf-"+ids[i]+"-device.json")
		if _, err := os.Stat(files[pod]); err != nil {
			t.Fatalf("device-info file of %s: %v", pod, err)
		}
	}

	pr.Set(holds("pod-a", ids[0]))
	if err := d.kubelet.Release("pod-b"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	eventually(t, "pod-b's device-info file removed", dpWait, func() (bool, string) {
		_, err := os.Stat(files["pod-b"])
		return os.IsNotExist(err), "still there"
	})
	t.Logf("pod-b's device-info file removed %v after kubelet stopped listing it (grace 500ms)", time.Since(t0).Round(time.Millisecond))
	d.dp.waitLog(t, "device-info file removed", ids[1])
	lists := pr.Lists()
	eventually(t, "three more lists", dpWait, func() (bool, string) { return pr.Lists() >= lists+3, "" })
	if _, err := os.Stat(files["pod-a"]); err != nil {
		t.Errorf("device-info file of pod-a, which still holds its VF: %v", err)
	}
	d.wait(t, "every VF still healthy", listedHealth(res, d.vfHealth(nil)))
}
