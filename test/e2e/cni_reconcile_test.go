package e2e

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chelsio-k8s/chelsio-sriov/internal/kubelettest"
	"github.com/chelsio-k8s/chelsio-sriov/internal/roottest"
)

// TestPrivilegedReconcileFreesVanishedPods: a pod's namespace vanishes without a DEL
// (a runtime or node crash; Multus never sends GC to this plugin). `chelsio-vf
// reconcile` frees its VF (home as it was, PF-side settings back), its lease and its
// state, and leaves a living pod's attachment alone.
func TestPrivilegedReconcileFreesVanishedPods(t *testing.T) {
	roottest.Require(t)
	e, before, beforePF := delEnv(t)
	const otherVF = "0000:81:01.4"
	gone, living := newPod(t), newPod(t)
	conf := delConf(e, delVF, delMAC)
	addOK(t, e, "pod-gone", gone, conf, 9000, delMAC)
	otherConf := e.conf(1, otherVF, map[string]any{"cniVersion": "1.0.0"})
	if _, err := e.add(1, "pod-living", living, otherConf); err != nil {
		t.Fatalf("ADD of the living pod: %v", err)
	}
	if err := roottest.RemoveNetns(gone); err != nil {
		t.Fatal(err)
	}

	n := e.node
	start := time.Now()
	out, errb, err := run(t, n.cvf, "emulate", "exec", "--name", n.name, "--run-dir", n.runDir, "--worker", strconv.Itoa(1), "--",
		n.cvf, "reconcile", "--once", "--cni-state-dir", e.dataDirs[1], "--cni-path", binDir)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("reconcile: %v\n%s%s", err, out, errb)
	}
	t.Logf("reconcile freed the vanished pod's VF, lease and state in %v (the command, DEL of one attachment included):\n%s", took.Round(time.Millisecond), out)
	if !strings.Contains(out, "freed pod-gone net1: VF "+delVF+" of default/pod-gone") {
		t.Errorf("reconcile's report does not name the freed attachment:\n%s", out)
	}
	if strings.Contains(out, "pod-living") {
		t.Errorf("reconcile freed the living pod:\n%s", out)
	}
	if _, ok := podIfaceOf(t, living, "net1"); !ok {
		t.Fatal("the living pod lost its VF")
	}
	if err := e.del(1, "pod-living", living, otherConf); err != nil {
		t.Fatalf("DEL of the living pod: %v", err)
	}
	assertReleased(t, e, delVF, before, &beforePF)
}

// TestPrivilegedReconcileFreesPodsKubeletForgot: a pod that kubelet no longer lists
// while its network namespace lives on (a namespace leaked without a DEL). With
// kubelet's pod-resources API, `chelsio-vf reconcile` frees its VF, lease and state,
// but not while the attachment is younger than --pod-grace, nor while kubelet does
// not answer, and never a pod that kubelet lists.
func TestPrivilegedReconcileFreesPodsKubeletForgot(t *testing.T) {
	roottest.Require(t)
	e, before, beforePF := delEnv(t)
	const otherVF = "0000:81:01.4"
	forgotten, living := newPod(t), newPod(t)
	conf := delConf(e, delVF, delMAC)
	addOK(t, e, "pod-forgotten", forgotten, conf, 9000, delMAC)
	otherConf := e.conf(1, otherVF, map[string]any{"cniVersion": "1.0.0"})
	if _, err := e.add(1, "pod-living", living, otherConf); err != nil {
		t.Fatalf("ADD of the living pod: %v", err)
	}
	socket := filepath.Join(shortTempDir(t), "pod-resources.sock")
	n := e.node
	reconcile := func(args ...string) (string, string) {
		t.Helper()
		argv := append([]string{"emulate", "exec", "--name", n.name, "--run-dir", n.runDir, "--worker", "1", "--",
			n.cvf, "reconcile", "--once", "--cni-state-dir", e.dataDirs[1], "--cni-path", binDir, "--pod-resources-socket", socket, "--pod-confirm", "50ms"}, args...)
		out, errb, err := run(t, n.cvf, argv...)
		if err != nil {
			t.Fatalf("reconcile: %v\n%s%s", err, out, errb)
		}
		return out, errb
	}

	// kubelet does not answer: only namespaces count, and both are alive.
	out, errb := reconcile("--pod-grace", "0s")
	if out != "" || !strings.Contains(errb, "only network namespaces count") {
		t.Fatalf("reconcile without kubelet: stdout %q, stderr %q; want nothing freed and the fallback said", out, errb)
	}
	pr, err := kubelettest.StartPodResources(socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pr.Close)
	pr.Set(kubelettest.PodDevices{Namespace: "default", Name: "pod-living"}, kubelettest.PodDevices{Namespace: "kube-system", Name: "chelsio-sriov-dp-x"})

	if out, _ := reconcile(); out != "" {
		t.Fatalf("reconcile with the default --pod-grace freed a new attachment:\n%s", out)
	}
	out, _ = reconcile("--pod-grace", "0s")
	if !strings.Contains(out, "freed pod-forgotten net1: VF "+delVF+" of default/pod-forgotten, because kubelet no longer lists its pod") {
		t.Errorf("reconcile's report does not name the forgotten pod's attachment:\n%s", out)
	}
	if strings.Contains(out, "pod-living") {
		t.Errorf("reconcile freed the pod kubelet lists:\n%s", out)
	}
	if _, ok := podIfaceOf(t, living, "net1"); !ok {
		t.Fatal("the living pod lost its VF")
	}
	if err := e.del(1, "pod-living", living, otherConf); err != nil {
		t.Fatalf("DEL of the living pod: %v", err)
	}
	assertReleased(t, e, delVF, before, &beforePF)
}
