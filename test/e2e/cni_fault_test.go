package e2e

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/google/go-cmp/cmp"

	"github.com/chelsio-k8s/chelsio-sriov/internal/roottest"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/cni"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// inProcess returns the plugin as a function running against worker w of the node:
// its sysfs tree, its namespace as the host, and host-local from the test binaries.
func (e *cniEnv) inProcess(w int) (*cni.Plugin, ns.NetNS) {
	e.t.Helper()
	host, err := ns.GetNS(filepath.Join("/run/netns", e.node.netns(w)))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = host.Close() })
	p := newPlugin(sysfs.Root(filepath.Join(e.node.runDir, e.node.name, "w"+string(rune('0'+w)), "sys")))
	p.HostNS = host
	return p, host
}

func (e *cniEnv) args(containerID string, pod ns.NetNS, conf []byte) *skel.CmdArgs {
	path := ""
	if pod != nil {
		path = pod.Path()
	}
	return &skel.CmdArgs{ContainerID: containerID, Netns: path, IfName: "net1", Args: "IgnoreUnknown=1", Path: binDir, StdinData: conf}
}

// TestPrivilegedCNIFaultAfterEachAddStep fails ADD after each of its changes in
// turn, with every setting requested, and checks each time that the VF is back in
// the host with its name, MTU, MAC and PF-side config, the lease is released and no
// state is left; then a plain ADD and DEL of the same VF work.
func TestPrivilegedCNIFaultAfterEachAddStep(t *testing.T) {
	roottest.Require(t)
	node := upNode(t, "--vfs", "2", "--mtu", "1500")
	bin(t, "chelsio-vf")
	e := newCNIEnv(t, node)
	p, _ := e.inProcess(1)
	const addr = "0000:81:01.4"
	v, err := vf.LookupVF(p.Root, vf.MustParsePCIAddr(addr), vf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mgmt := vf.NewMgmt(p.Root)
	origPF, err := mgmt.VFConfig(v.MgmtNetdev, v.VFIndex)
	if err != nil {
		t.Fatal(err)
	}
	origLink, ok := e.workerLink(1, addr)
	if !ok {
		t.Fatal("no VF netdev")
	}
	conf := e.conf(1, addr, map[string]any{
		"cniVersion": "1.0.0", "mtu": 9000, "vlan": 100, "mac": "0a:58:c6:33:64:0b",
		"max_tx_rate": 10000, "link_state": "enable", "spoofchk": "off",
	})
	for _, step := range cni.AddSteps {
		t.Run(step, func(t *testing.T) {
			pod := newPod(t)
			p.Fault = func(s string) error {
				if s == step {
					return errors.New("boom")
				}
				return nil
			}
			_, err := p.Add(e.args("fault-"+step, pod, conf))
			if err == nil || !strings.Contains(err.Error(), "injected fault after "+step) {
				t.Fatalf("ADD error = %v, want the injected fault after %s", err, step)
			}
			if strings.Contains(err.Error(), "undoing") {
				t.Errorf("undo failed: %v", err)
			}
			got := e.waitWorkerLink(1, addr)
			if diff := cmp.Diff(origLink, got); diff != "" {
				t.Errorf("VF netdev after the failed ADD mismatch (-before +after):\n%s", diff)
			}
			pf, err := mgmt.VFConfig(v.MgmtNetdev, v.VFIndex)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(origPF, pf); diff != "" {
				t.Errorf("PF-side VF config after the failed ADD mismatch (-before +after):\n%s", diff)
			}
			if l := e.leases(); len(l) != 0 {
				t.Errorf("leases left: %v", l)
			}
			for _, d := range []string{"attachments", "vfs"} {
				if left, _ := os.ReadDir(filepath.Join(e.dataDirs[1], d)); len(left) != 0 {
					t.Errorf("%s left: %v", d, left)
				}
			}
			if _, _, err := podLink(t, pod, "net1"); err == nil {
				t.Error("net1 still in the pod")
			}
		})
	}
	// The VF is as good as new: a clean ADD and DEL.
	p.Fault = nil
	pod := newPod(t)
	if _, err := p.Add(e.args("after-faults", pod, conf)); err != nil {
		t.Fatalf("ADD after the faults: %v", err)
	}
	pf, _ := mgmt.VFConfig(v.MgmtNetdev, v.VFIndex)
	want := vf.VFConfig{MAC: "0a:58:c6:33:64:0b", VLAN: 100, MaxTxRate: 10000, LinkState: vf.LinkStateEnable}
	if diff := cmp.Diff(want, pf); diff != "" {
		t.Errorf("PF-side config while attached mismatch (-want +got):\n%s", diff)
	}
	if err := p.Del(e.args("after-faults", pod, conf)); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	if diff := cmp.Diff(origLink, e.waitWorkerLink(1, addr)); diff != "" {
		t.Errorf("VF after DEL mismatch (-before +after):\n%s", diff)
	}
	pf, _ = mgmt.VFConfig(v.MgmtNetdev, v.VFIndex)
	if diff := cmp.Diff(origPF, pf); diff != "" {
		t.Errorf("PF-side config after DEL mismatch (-before +after):\n%s", diff)
	}
}
