package node

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cnistore"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/emulate/sysfstree"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/podresources"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// heldTree is a T62100-CR with 8 VFs on PF0 whose first VF a pod holds, as the
// CNI plugin records it in stateDir.
func heldTree(t *testing.T) (tree *sysfstree.Tree, stateDir string) {
	t.Helper()
	tree, err := sysfstree.Build(t.TempDir(), sysfstree.Options{}, sysfstree.Adapter{VFs: [4]int{8}})
	if err != nil {
		t.Fatal(err)
	}
	stateDir = t.TempDir() + "/state"
	store := cnistore.Store{Dir: stateDir}
	if err := store.Ensure(); err != nil {
		t.Fatal(err)
	}
	a := &cnistore.Attachment{
		ContainerID: "c0ffee", IfName: "net1", Netns: "/run/netns/pod", Network: "sriov-network",
		PodNamespace: "default", PodName: "testpod1", VF: "0000:81:01.0", Phase: cnistore.PhaseAdding,
	}
	if err := store.SaveAttachment(a); err != nil {
		t.Fatal(err)
	}
	return tree, stateDir
}

// TestSetupRefusesHeldVFs: a change of the VF count (which cxgb4 makes through 0,
// removing every VF) or a rebind is refused while a pod holds a VF concerned, and
// names the pod; --force proceeds; the MTU alone changes no count.
func TestSetupRefusesHeldVFs(t *testing.T) {
	const numvfs = "bus/pci/devices/0000:81:00.0/sriov_numvfs"
	for _, tc := range []struct {
		name    string
		cfg     SetupConfig
		gone    string // a VF whose netdev is out of the node's namespace
		pods    PodLister
		noState bool
		refused []string // words of the refusal; nil: Setup goes on
		writes  bool     // whether it writes sriov_numvfs
	}{
		{name: "lowering", cfg: SetupConfig{VFs: 4}, refused: []string{"PF0 0000:81:00.0: 8 VFs -> 4", "0000:81:01.0: pod default/testpod1", "drain", "--force"}},
		{name: "raising", cfg: SetupConfig{VFs: 16}, refused: []string{"8 VFs -> 16", "pod default/testpod1"}},
		{name: "removing", cfg: SetupConfig{VFs: 0}, refused: []string{"8 VFs -> 0"}},
		{name: "rebinding", cfg: SetupConfig{VFs: 8, Driver: vf.DriverVFIO}, refused: []string{"binding VFs of PF0 0000:81:00.0 to other drivers", "pod default/testpod1"}},
		{name: "forced", cfg: SetupConfig{VFs: 4, Force: true}, writes: true},
		{name: "the MTU alone", cfg: SetupConfig{VFs: LeaveVFs, MTU: 9000}},
		{name: "the same count", cfg: SetupConfig{VFs: 8, MTU: 9000}},
		{name: "a netdev in another namespace", noState: true, gone: "0000:81:01.4", cfg: SetupConfig{VFs: 4}, refused: []string{"0000:81:01.4: its netdev is in another network namespace"}},
		{name: "nothing held", noState: true, cfg: SetupConfig{VFs: 4}, writes: true},
		{name: "a pod by kubelet's account", noState: true, pods: fakePods{pods: dpdkPod}, cfg: SetupConfig{VFs: 4}, refused: []string{"0000:81:01.4: pod dpdk/l3fwd-0 (kubelet)", "drain"}},
		{name: "kubelet holds nothing", noState: true, pods: fakePods{}, cfg: SetupConfig{VFs: 4}, writes: true},
		{name: "kubelet does not answer", noState: true, pods: fakePods{err: errors.New("connection refused")}, cfg: SetupConfig{VFs: 4}, refused: []string{"8 VFs -> 4", "ask kubelet which pods hold VFs: connection refused", "--force"}},
		{name: "forced without kubelet", noState: true, pods: fakePods{err: errors.New("connection refused")}, cfg: SetupConfig{VFs: 4, Force: true}, writes: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tree, stateDir := heldTree(t)
			if tc.noState {
				stateDir = t.TempDir() + "/none"
			}
			if tc.gone != "" {
				if err := tree.RemoveNetdev(vf.MustParsePCIAddr(tc.gone), netdevName(t, tree, tc.gone)); err != nil {
					t.Fatal(err)
				}
			}
			before := snapshot(t, tree)
			cfg := tc.cfg
			cfg.Sysfs, cfg.CNIStateDir, cfg.DryRun, cfg.Pods = tree.Root, stateDir, true, tc.pods
			var out bytes.Buffer
			err := Setup(context.Background(), cfg, &out)
			if tc.refused == nil && err != nil {
				t.Fatalf("Setup: %v\n%s", err, out.String())
			}
			for _, w := range tc.refused {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("Setup error %v, want one naming %q", err, w)
				}
			}
			if got := strings.Contains(out.String(), "would write \"") && strings.Contains(out.String(), numvfs); got != tc.writes {
				t.Errorf("writes sriov_numvfs: %v, want %v\n%s", got, tc.writes, out.String())
			}
			if after := snapshot(t, tree); len(after) != len(before) {
				t.Errorf("a dry run changed the tree")
			}
		})
	}
}

// dpdkPod holds a VF of PF0 that no CNI state records (a vfio-pci VF of a DPDK
// pod), and a device of another resource.
var dpdkPod = []podresources.Pod{{Namespace: "dpdk", Name: "l3fwd-0", Devices: map[string][]string{
	"chelsio.com/vf_vfio": {"0000:81:01.4"}, "example.com/gpu": {"GPU-1"},
}}}

// fakePods is kubelet's pod-resources API as a test sets it.
type fakePods struct {
	pods []podresources.Pod
	err  error
}

func (f fakePods) List(context.Context) ([]podresources.Pod, error) { return f.pods, f.err }

// netdevName returns the name of the VF's netdev in the tree.
func netdevName(t *testing.T, tree *sysfstree.Tree, addr string) string {
	t.Helper()
	v, err := vf.LookupVF(tree.Root, vf.MustParsePCIAddr(addr), vf.Options{})
	if err != nil || v.Netdev == "" {
		t.Fatalf("VF %s has no netdev (%v)", addr, err)
	}
	return v.Netdev
}
