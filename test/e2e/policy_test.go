package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chelsio-k8s/chelsio-sriov/internal/roottest"
	"github.com/chelsio-k8s/chelsio-sriov/internal/syncbuf"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/node"
)

// The PFs of the emulated worker's adapter.
const (
	pf0 = "0000:81:00.0"
	pf1 = "0000:81:00.1"
)

// policyWait bounds every wait for the agent to bring the node to its policy: a
// few rounds of VF creation on a loaded 2-CPU machine.
const policyWait = 60 * time.Second

// policyNode is an emulated node with a node policy file, the agent's status file
// and the CNI state directory it reads: the node's own files, kept across its
// reboots.
type policyNode struct {
	*emuNode
	file, status, cniState string
}

func newPolicyNode(t *testing.T, n *emuNode, cniState string) *policyNode {
	dir := t.TempDir()
	if cniState == "" {
		cniState = filepath.Join(dir, "no-cni-state")
	}
	return &policyNode{emuNode: n, file: filepath.Join(dir, "policy.yaml"), status: filepath.Join(dir, "run", "policy-status.json"), cniState: cniState}
}

// write replaces the policy file as kubelet updates a mounted ConfigMap: a new
// file renamed over the old one.
func (p *policyNode) write(t *testing.T, policy string) {
	t.Helper()
	tmp := p.file + ".new"
	if err := os.WriteFile(tmp, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p.file); err != nil {
		t.Fatal(err)
	}
}

// argv is `chelsio-vf policy` with the node's files and args, run on worker 1.
func (p *policyNode) argv(args ...string) []string {
	return append([]string{
		p.cvf, "emulate", "exec", "--name", p.name, "--run-dir", p.runDir, "--worker", "1", "--",
		p.cvf, "policy", "--file", p.file, "--status-file", p.status, "--node-name", "worker-1", "--cni-state-dir", p.cniState,
		"--pod-resources-socket=", // no kubelet of the host's: a test that wants one passes its stand-in's
	}, args...)
}

// once runs one round of the policy.
func (p *policyNode) once(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	argv := p.argv(append([]string{"--once"}, args...)...)
	return run(t, argv[0], argv[1:]...)
}

// start starts the agent, which runs until the test ends or it is stopped.
func (p *policyNode) start(t *testing.T) (*dpProc, *syncbuf.Buffer) {
	t.Helper()
	out := &syncbuf.Buffer{}
	return startProcOut(t, out, p.argv("--interval", "300ms")...), out
}

// readStatus reads the agent's status file.
func (p *policyNode) readStatus(t *testing.T) *node.PolicyStatus {
	t.Helper()
	st, err := node.ReadPolicyStatus(p.status)
	if err != nil {
		t.Fatalf("the agent's status: %v", err)
	}
	return st
}

// doctorPolicy is the node-policy check of `chelsio-vf doctor` on worker 1.
func (p *policyNode) doctorPolicy(t *testing.T) node.Result {
	t.Helper()
	out, errb, _ := run(t, p.cvf, "emulate", "exec", "--name", p.name, "--run-dir", p.runDir, "--worker", "1", "--",
		p.cvf, "doctor", "--json", "--policy-status-file", p.status, "--cni-state-dir", p.cniState)
	var r node.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("doctor --json: %v\n%s%s", err, out, errb)
	}
	for _, c := range r.Checks {
		if c.Name == node.CheckPolicy {
			return c
		}
	}
	t.Fatalf("doctor has no %s check:\n%s", node.CheckPolicy, out)
	return node.Result{}
}

// pfState is what a policy sets on one PF: its VF count and the MTU of its VF
// netdevs (0: no VF).
type pfState struct{ vfs, mtu int }

// state reads, on worker 1, the VF count and MTU of each PF that has VFs, and
// the MTU of the ports ("ports", when they all have the same, else -1).
func (p *policyNode) state(t *testing.T) (map[string]pfState, error) {
	l, err := p.listTry(t, 1)
	if err != nil {
		return nil, err
	}
	got := map[string]pfState{}
	for _, v := range l {
		s := got[v.PF]
		m := p.mtuOf(1, v.Netdev)
		if s.vfs > 0 && s.mtu != m {
			m = -1
		}
		got[v.PF] = pfState{s.vfs + 1, m}
	}
	ports, _ := filepath.Glob(p.treeFile(1, "bus/pci/devices/0000:81:00.4/net/*"))
	portMTU := 0
	for i, port := range ports {
		m := p.mtuOf(1, filepath.Base(port))
		if i > 0 && m != portMTU {
			m = -1
		}
		portMTU = m
	}
	got["ports"] = pfState{len(ports), portMTU}
	return got, nil
}

// waitState waits until worker 1 is in the state want, and returns how long it took.
func (p *policyNode) waitState(t *testing.T, what string, want map[string]pfState) time.Duration {
	t.Helper()
	start := time.Now()
	eventually(t, what, policyWait, func() (bool, string) {
		got, err := p.state(t)
		if err != nil {
			return false, err.Error()
		}
		return fmt.Sprint(got) == fmt.Sprint(want), fmt.Sprintf("%v, want %v", got, want)
	})
	return time.Since(start)
}

const (
	// policyA: 4 VFs on PF0 and 2 on PF1, at MTU 9000, every VF on cxgb4vf.
	policyA = `
adapters:
  - model: T62100-CR
    pfs:
      - {pf: 0, numVfs: 4, mtu: 9000, drivers: [{vfs: all, driver: cxgb4vf}]}
      - {pf: 1, numVfs: 2, mtu: 9000}
`
	// policyB: 2 VFs on PF0, 3 on PF1, at MTU 9000.
	policyB = `
adapters:
  - model: T62100-CR
    pfs:
      - {pf: 0, numVfs: 2, mtu: 9000}
      - {pf: 1, numVfs: 3, mtu: 9000}
`
)

var (
	stateA = map[string]pfState{pf0: {4, 9000}, pf1: {2, 9000}, "ports": {2, 9000}}
	stateB = map[string]pfState{pf0: {2, 9000}, pf1: {3, 9000}, "ports": {2, 9000}}
)

// TestPrivilegedPolicyOnce: on the emulated node, `chelsio-vf policy --once` gives
// the PFs the VF counts and MTUs its policy names, reports it in its status file
// (which doctor reads), and a second round writes nothing. The T62100-CR example
// of deployments/, with VFs 6-7 on vfio-pci, is checked by its dry run: the
// emulated node does not play driver binding.
func TestPrivilegedPolicyOnce(t *testing.T) {
	roottest.Require(t)
	p := newPolicyNode(t, upNode(t, "--vfs", "8"), "")
	if got, err := p.state(t); err != nil || fmt.Sprint(got) != fmt.Sprint(map[string]pfState{pf0: {8, 1500}, "ports": {2, 1500}}) {
		t.Fatalf("the node at start: %v %v", got, err)
	}
	p.write(t, policyA)
	out, errb, err := p.once(t)
	if err != nil {
		t.Fatalf("policy --once: %v\n%s%s", err, out, errb)
	}
	p.waitState(t, "the policy's counts and MTUs", stateA)
	st := p.readStatus(t)
	if st.Result != node.RoundApplied || !st.Changed || len(st.PFs) != 2 || st.Node != "worker-1" || st.File != p.file {
		t.Errorf("status after the first round: %+v", st)
	}
	if r := p.doctorPolicy(t); r.Status != node.OK || !strings.Contains(r.Finding, "2 PFs as it says") {
		t.Errorf("doctor's %s check: %+v", node.CheckPolicy, r)
	}
	// Again: nothing to do, nothing written.
	out, errb, err = p.once(t)
	if err != nil || strings.Contains(out, `write "`) || !strings.Contains(out, "already 4 VFs") {
		t.Errorf("second round: %v, want no write:\n%s%s", err, out, errb)
	}
	if st := p.readStatus(t); st.Result != node.RoundApplied || st.Changed {
		t.Errorf("status after the second round: %+v", st)
	}

	// The example policy, dry: PF0 already has its 8 VFs but for 6-7, which would be
	// rebound to vfio-pci; nothing changes.
	p.write(t, examplePolicy(t))
	mustRun(t, p.cvf, "emulate", "exec", "--name", p.name, "--run-dir", p.runDir, "--worker", "1", "--", p.cvf, "setup", "--pf", "0", "--vfs", "8", "--cni-state-dir", p.cniState)
	before, _ := p.state(t)
	out, errb, err = p.once(t, "--dry-run")
	if err != nil {
		t.Fatalf("policy --once --dry-run: %v\n%s%s", err, out, errb)
	}
	var vfio []string
	for _, v := range p.onPF0(1) {
		if v.VFIndex >= 6 {
			vfio = append(vfio, v.PCIAddress)
		}
	}
	if len(vfio) != 2 {
		t.Fatalf("VFs 6-7 of PF0: %v", vfio)
	}
	for _, want := range []string{
		`would write "vfio-pci" to ` + p.treeFile(1, "bus/pci/devices/"+vfio[0]+"/driver_override"),
		`would write "` + vfio[1] + `" to ` + p.treeFile(1, "bus/pci/drivers/vfio-pci/bind"),
		`would write "8" to ` + p.treeFile(1, "bus/pci/devices/"+pf1+"/sriov_numvfs"),
		"would set mtu 9000 on",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the dry run lacks %q:\n%s", want, out)
		}
	}
	for _, v := range p.onPF0(1) {
		if v.VFIndex < 6 && strings.Contains(out, v.PCIAddress+"/driver_override") {
			t.Errorf("the dry run would rebind VF %d (%s), which the policy keeps on cxgb4vf", v.VFIndex, v.PCIAddress)
		}
	}
	if after, _ := p.state(t); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("the dry run changed the node: %v -> %v", before, after)
	}
	if st := p.readStatus(t); !st.DryRun {
		t.Errorf("status of the dry run: %+v", st)
	}
}

// examplePolicy is the policy of the ConfigMap in deployments/.
func examplePolicy(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../deployments/policy-configmap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, body, ok := strings.Cut(string(b), "policy.yaml: |\n")
	if !ok {
		t.Fatal("deployments/policy-configmap.yaml has no policy.yaml")
	}
	var lines []string
	for l := range strings.SplitSeq(body, "\n") {
		lines = append(lines, strings.TrimPrefix(l, "    "))
	}
	return strings.Join(lines, "\n")
}

// TestPrivilegedPolicyAgentEditsAndReboot: the long-running agent follows edits of
// its policy file (an invalid one is refused, the node kept as it was); after a
// reboot of the emulated node, which brings back the VFs of its first boot at MTU
// 1500, the agent started again as systemd starts it brings the node back to the
// policy with no other command.
func TestPrivilegedPolicyAgentEditsAndReboot(t *testing.T) {
	roottest.Require(t)
	p := newPolicyNode(t, upNode(t, "--vfs", "8"), "")
	p.write(t, policyA)
	agent, out := p.start(t)
	t.Logf("the agent brought the node to policy A in %v", p.waitState(t, "policy A", stateA).Round(time.Millisecond))

	p.write(t, policyB)
	t.Logf("the agent applied the edited policy B in %v", p.waitState(t, "policy B, after the edit", stateB).Round(time.Millisecond))
	eventually(t, "the agent says the file changed", policyWait, func() (bool, string) {
		return strings.Contains(out.String(), p.file+" changed: applying it"), out.String()
	})

	// An invalid edit: refused, reported, the node left as policy B made it.
	p.write(t, "adapters: [{pfs: [{pf: 9, numVfs: 1}]}]\n")
	eventually(t, "the invalid policy reported", policyWait, func() (bool, string) {
		st, err := node.ReadPolicyStatus(p.status)
		return err == nil && st.Result == node.RoundFailed && strings.Contains(st.Error, "pf 9: only PF0-PF3 have VFs"), fmt.Sprintf("%+v %v", st, err)
	})
	if !strings.Contains(agent.stderr.String(), "(nothing applied)") {
		t.Errorf("the agent's stderr does not report the invalid policy:\n%s", agent.stderr.String())
	}
	if got, err := p.state(t); err != nil || fmt.Sprint(got) != fmt.Sprint(stateB) {
		t.Errorf("after the invalid edit: %v %v, want %v", got, err, stateB)
	}
	if r := p.doctorPolicy(t); r.Status != node.Fail || !strings.Contains(r.Finding, "pf 9") {
		t.Errorf("doctor's %s check after the invalid edit: %+v", node.CheckPolicy, r)
	}
	p.write(t, policyA)
	p.waitState(t, "policy A again", stateA)

	// Reboot: every process ends, the kernel forgets the VFs and MTUs; the node's
	// files (policy, status) stay.
	agent.stop(t)
	start := time.Now()
	mustRun(t, p.cvf, "emulate", "down", "--name", p.name, "--run-dir", p.runDir)
	mustRun(t, p.cvf, "emulate", "up", "--name", p.name, "--run-dir", p.runDir, "--vfs", "8")
	if got, err := p.state(t); err != nil || fmt.Sprint(got) == fmt.Sprint(stateA) {
		t.Fatalf("the rebooted node is already as the policy says (%v, %v): the test proves nothing", got, err)
	}
	booted := time.Since(start)
	p.start(t)
	took := p.waitState(t, "policy A after the reboot", stateA)
	t.Logf("reboot: the emulated node went down and up in %v; the agent, started again, restored policy A in %v", booted.Round(time.Millisecond), took.Round(time.Millisecond))
	eventually(t, "status after the reboot", policyWait, func() (bool, string) {
		st, err := node.ReadPolicyStatus(p.status)
		return err == nil && st.Result == node.RoundApplied && st.Time.After(start), fmt.Sprintf("%+v %v", st, err)
	})
}

// TestPrivilegedPolicyRefusesHeldVFs: with a pod holding a VF through the real CNI
// plugin, a policy that lowers the PF's VF count (which removes every VF of the
// PF: cxgb4 goes through 0) is refused, naming the pod, in the output, the status
// file and doctor; the VF stays in the pod. With --force it proceeds.
func TestPrivilegedPolicyRefusesHeldVFs(t *testing.T) {
	roottest.Require(t)
	n := upNode(t, "--vfs", "2")
	e := newCNIEnv(t, n)
	p := newPolicyNode(t, n, e.dataDirs[1])
	const held = "0000:81:01.0"
	conf := e.conf(1, held, map[string]any{"cniVersion": "1.0.0"})
	pod := newPod(t)
	if _, err := e.add(1, "pod-held", pod, conf); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	p.write(t, "adapters: [{pfs: [{pf: 0, numVfs: 1}]}]\n")
	out, errb, err := p.once(t)
	if code := exitCode(t, err); code != 1 {
		t.Fatalf("policy --once with a pod holding %s: exit %d, want 1:\n%s%s", held, code, out, errb)
	}
	for _, w := range []string{"PF0 " + pf0 + ": 2 VFs -> 1", held + ": pod default/pod-held", "drain", "--force"} {
		if !strings.Contains(errb, w) {
			t.Errorf("the refusal does not name %q:\n%s", w, errb)
		}
	}
	st := p.readStatus(t)
	if st.Result != node.RoundRefused || len(st.PFs) != 1 || !slices.Contains(st.PFs[0].Holders, held+": pod default/pod-held") {
		t.Errorf("status of the refused round: %+v", st)
	}
	if r := p.doctorPolicy(t); r.Status != node.Warn || !strings.Contains(r.Finding, "pod default/pod-held") || !strings.Contains(r.Fix, "kubectl drain worker-1") {
		t.Errorf("doctor's %s check: %+v", node.CheckPolicy, r)
	}
	if _, ok := podIfaceOf(t, pod, "net1"); !ok {
		t.Error("the pod lost its VF to a refused policy")
	}
	if got := len(n.onPF0(1)); got != 2 {
		t.Errorf("%d VFs on PF0 after the refusal, want 2", got)
	}

	out, errb, err = p.once(t, "--force")
	if err != nil {
		t.Fatalf("policy --once --force: %v\n%s%s", err, out, errb)
	}
	if !strings.Contains(out, "forced, although pods hold VFs") || !strings.Contains(out, held+": pod default/pod-held") {
		t.Errorf("the forced round does not say whose VFs it took:\n%s", out)
	}
	eventually(t, "1 VF on PF0", policyWait, func() (bool, string) {
		l, err := n.listTry(t, 1)
		return err == nil && len(l) == 1, strconv.Itoa(len(l))
	})
	if st := p.readStatus(t); st.Result != node.RoundApplied || !st.Force {
		t.Errorf("status of the forced round: %+v", st)
	}
	if err := e.del(1, "pod-held", pod, conf); err != nil {
		t.Errorf("DEL after the VF was taken: %v", err)
	}
}
