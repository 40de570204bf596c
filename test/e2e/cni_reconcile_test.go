package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"

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
	delReleased(t, e, "pod-living", living, otherConf, delVF, before, beforePF)
}
