package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/chelsio-k8s/chelsio-sriov/internal/kubelettest"
	"github.com/chelsio-k8s/chelsio-sriov/internal/roottest"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// reconcileEnv is a node with two attached pods: pod `lost` (delVF, with PF-side
// settings) that the test takes away from the node somehow, and pod-living
// (0000:81:01.4), which must keep its VF.
type reconcileEnv struct {
	e            *cniEnv
	before       vfHome
	beforePF     vf.VFConfig
	lost, living ns.NetNS
	lostID       string
	otherConf    []byte
}

func newReconcileEnv(t *testing.T, lostID string) *reconcileEnv {
	t.Helper()
	e, before, beforePF := delEnv(t)
	r := &reconcileEnv{e: e, before: before, beforePF: beforePF, lost: newPod(t), living: newPod(t), lostID: lostID}
	addOK(t, e, lostID, r.lost, delConf(e, delVF, delMAC), 9000, delMAC)
	r.otherConf = e.conf(1, "0000:81:01.4", map[string]any{"cniVersion": "1.0.0"})
	if _, err := e.add(1, "pod-living", r.living, r.otherConf); err != nil {
		t.Fatalf("ADD of the living pod: %v", err)
	}
	return r
}

// reconcile runs `chelsio-vf reconcile --once` on worker 1 with args added.
func (r *reconcileEnv) reconcile(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	n := r.e.node
	argv := []string{
		"emulate", "exec", "--name", n.name, "--run-dir", n.runDir, "--worker", "1", "--",
		n.cvf, "reconcile", "--once", "--cni-state-dir", r.e.dataDirs[1], "--cni-path", binDir,
	}
	out, errb, err := run(t, n.cvf, append(argv, args...)...)
	if err != nil {
		t.Fatalf("reconcile: %v\n%s%s", err, out, errb)
	}
	return out, errb
}

// assertOnlyLostFreed checks reconcile's report (the lost pod's line, with why)
// and the node: the lost pod's VF, lease and state freed, pod-living's VF kept.
func (r *reconcileEnv) assertOnlyLostFreed(t *testing.T, out, why string) {
	t.Helper()
	if want := "freed " + r.lostID + " net1: VF " + delVF + " of default/" + r.lostID + ", because " + why; !strings.Contains(out, want) {
		t.Errorf("reconcile's report lacks %q:\n%s", want, out)
	}
	if strings.Contains(out, "pod-living") {
		t.Errorf("reconcile freed the living pod:\n%s", out)
	}
	if _, ok := podIfaceOf(t, r.living, "net1"); !ok {
		t.Fatal("the living pod lost its VF")
	}
	delReleased(t, r.e, "pod-living", r.living, r.otherConf, delVF, r.before, r.beforePF)
}

// TestPrivilegedReconcileFreesVanishedPods: a pod's namespace vanishes without a DEL
// (a runtime or node crash; Multus never sends GC to this plugin). `chelsio-vf
// reconcile` frees its VF (home as it was, PF-side settings back), its lease and its
// state, and leaves a living pod's attachment alone.
func TestPrivilegedReconcileFreesVanishedPods(t *testing.T) {
	roottest.Require(t)
	r := newReconcileEnv(t, "pod-gone")
	if err := roottest.RemoveNetns(r.lost); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out, _ := r.reconcile(t)
	t.Logf("reconcile freed the vanished pod's VF, lease and state in %v (the command, DEL of one attachment included):\n%s", time.Since(start).Round(time.Millisecond), out)
	r.assertOnlyLostFreed(t, out, "its network namespace is gone")
}

// TestPrivilegedReconcileFreesPodsKubeletForgot: a pod that kubelet no longer lists
// while its network namespace lives on (a namespace leaked without a DEL). With
// kubelet's pod-resources API, `chelsio-vf reconcile` frees its VF, lease and state,
// but not while the attachment is younger than --pod-grace, nor while kubelet does
// not answer, and never a pod that kubelet lists.
func TestPrivilegedReconcileFreesPodsKubeletForgot(t *testing.T) {
	roottest.Require(t)
	r := newReconcileEnv(t, "pod-forgotten")
	socket := filepath.Join(shortTempDir(t), "pod-resources.sock")
	withKubelet := func(args ...string) (string, string) {
		return r.reconcile(t, append([]string{"--pod-resources-socket", socket, "--pod-confirm", "50ms"}, args...)...)
	}

	// kubelet does not answer: only namespaces count, and both are alive.
	if out, errb := withKubelet("--pod-grace", "0s"); out != "" || !strings.Contains(errb, "only network namespaces count") {
		t.Fatalf("reconcile without kubelet: stdout %q, stderr %q; want nothing freed and the fallback said", out, errb)
	}
	pr, err := kubelettest.StartPodResources(socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pr.Close)
	pr.Set(kubelettest.PodDevices{Namespace: "default", Name: "pod-living"}, kubelettest.PodDevices{Namespace: "kube-system", Name: "chelsio-sriov-dp-x"})

	if out, _ := withKubelet(); out != "" {
		t.Fatalf("reconcile with the default --pod-grace freed a new attachment:\n%s", out)
	}
	out, _ := withKubelet("--pod-grace", "0s")
	r.assertOnlyLostFreed(t, out, "kubelet no longer lists its pod")
}
