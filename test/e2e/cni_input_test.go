package e2e

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/google/go-cmp/cmp"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/roottest"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf/vftest"
)

const (
	inputVF = "0000:81:01.0"
	// nonChelsio is an Intel function the test adds to worker 1's tree.
	nonChelsio = "0000:82:00.0"
)

// TestPrivilegedCNIRefusesBadInput feeds bad input to the real binary through libcni
// and checks each refusal: a *types.Error with the right code and a one-line
// message naming the key, and nothing touched: the VF still in its worker as it was
// (name, MTU, MAC, admin state), no net1 in the pod, no lease, no file in dataDir.
func TestPrivilegedCNIRefusesBadInput(t *testing.T) {
	roottest.Require(t)
	node := upNode(t, "--vfs", "2")
	// A non-Chelsio PCI function in worker 1's tree.
	tree := &vftest.Tree{Root: sysfs.Root(filepath.Join(node.runDir, node.name, "w1", "sys")), Opts: vftest.Options{AbsoluteLinks: true}}
	if err := tree.AddFunction(vftest.Function{Addr: vf.MustParsePCIAddr(nonChelsio), Vendor: 0x8086, Device: 0x154c, Driver: ""}); err != nil {
		t.Fatal(err)
	}

	type setup struct {
		deviceID    string
		over        map[string]any
		ifName      string
		containerID string
	}
	tests := []struct {
		name    string
		in      setup
		code    uint
		mention []string // the message names these
	}{
		{"unknown deviceID", setup{deviceID: "0000:81:09.0"}, types.ErrInvalidNetworkConfig, []string{"deviceID", "0000:81:09.0"}},
		{"non-Chelsio deviceID", setup{deviceID: nonChelsio}, types.ErrInvalidNetworkConfig, []string{"deviceID", nonChelsio}},
		{"deviceID of a PF", setup{deviceID: "0000:81:00.0"}, types.ErrInvalidNetworkConfig, []string{"deviceID", "0000:81:00.0"}},
		{"bad mac", setup{over: map[string]any{"mac": "0a:58:c6:33:64:zz"}}, types.ErrInvalidNetworkConfig, []string{`"mac"`}},
		{"multicast mac", setup{over: map[string]any{"mac": "01:00:5e:00:00:01"}}, types.ErrInvalidNetworkConfig, []string{`"mac"`}},
		{"vlan 5000", setup{over: map[string]any{"vlan": 5000}}, types.ErrInvalidNetworkConfig, []string{`"vlan"`, "5000"}},
		{"mtu 50", setup{over: map[string]any{"mtu": 50}}, types.ErrInvalidNetworkConfig, []string{`"mtu"`, "50"}},
		{"mtu 9700", setup{over: map[string]any{"mtu": 9700}}, types.ErrInvalidNetworkConfig, []string{`"mtu"`, "9700"}},
		{"vlanQoS 3", setup{over: map[string]any{"vlan": 100, "vlanQoS": 3}}, types.ErrInvalidNetworkConfig, []string{`"vlanQoS"`}},
		{"spoofchk on", setup{over: map[string]any{"spoofchk": "on"}}, types.ErrInvalidNetworkConfig, []string{`"spoofchk"`}},
		{"trust on", setup{over: map[string]any{"trust": "on"}}, types.ErrInvalidNetworkConfig, []string{`"trust"`}},
		{"min_tx_rate 10", setup{over: map[string]any{"min_tx_rate": 10}}, types.ErrInvalidNetworkConfig, []string{`"min_tx_rate"`}},
		{"vlanProto 802.1ad", setup{over: map[string]any{"vlan": 100, "vlanProto": "802.1ad"}}, types.ErrInvalidNetworkConfig, []string{`"vlanProto"`, "802.1ad"}},
		{"link_state bogus", setup{over: map[string]any{"link_state": "bogus"}}, types.ErrInvalidNetworkConfig, []string{`"link_state"`, "bogus"}},
		{"unknown key", setup{over: map[string]any{"vlna": 100}}, types.ErrInvalidNetworkConfig, []string{"vlna"}},
		{"relative dataDir", setup{over: map[string]any{"dataDir": "../x"}}, types.ErrInvalidNetworkConfig, []string{`"dataDir"`, "../x"}},
		{"vlan of the wrong type", setup{over: map[string]any{"vlan": "100"}}, types.ErrDecodingFailure, []string{"vlan"}},
		{"mtu of the wrong type", setup{over: map[string]any{"mtu": 9000.5}}, types.ErrDecodingFailure, []string{"mtu"}},
		// libcni refuses these before it runs the plugin, with the utils package's
		// codes and messages (skel would give the same).
		{"ifname with a slash", setup{ifName: "net1/../x"}, types.ErrInvalidEnvironmentVariables, []string{"interface name"}},
		{"ifname over 15 characters", setup{ifName: "net1234567890123"}, types.ErrInvalidEnvironmentVariables, []string{"interface name"}},
		{"containerID with a slash", setup{containerID: "pod/../x"}, types.ErrInvalidEnvironmentVariables, []string{"containerID"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newCNIEnv(t, node)
			before := e.homes(t, 1)
			deviceID := tt.in.deviceID
			if deviceID == "" {
				deviceID = inputVF
			}
			over := map[string]any{"cniVersion": "1.0.0"}
			for k, v := range tt.in.over {
				over[k] = v
			}
			conf := e.conf(1, deviceID, over)
			pod := newPod(t)
			rt := e.rt("pod-bad", pod)
			if tt.in.ifName != "" {
				rt.IfName = tt.in.ifName
			}
			if tt.in.containerID != "" {
				rt.ContainerID = tt.in.containerID
			}
			r, err := e.cni(1).AddNetwork(ctx30(t), e.plugin(conf), rt)
			if err == nil {
				t.Fatalf("ADD succeeded: %v", r)
			}
			checkRefusal(t, err, tt.code, tt.mention)

			if diff := cmp.Diff(before, e.homes(t, 1)); diff != "" {
				t.Errorf("the refused ADD changed the worker's VFs (-before +after):\n%s", diff)
			}
			if _, ok := podIfaceOf(t, pod, "net1"); ok {
				t.Error("the pod has a net1")
			}
			if l := e.leases(); len(l) != 0 {
				t.Errorf("leases: %v", l)
			}
			if f := filesUnder(t, e.dataDirs[1]); len(f) != 0 {
				t.Errorf("files in dataDir: %v", f)
			}
		})
	}

	// The binary's own checks, without libcni's in front: skel refuses a bad
	// CNI_IFNAME or CNI_CONTAINERID before calling the plugin.
	for _, tt := range []struct {
		name, containerID, ifName, mention string
	}{
		{"binary: ifname with a slash", "pod-bad", "net1/../x", "interface name"},
		{"binary: ifname over 15 characters", "pod-bad", "net1234567890123", "interface name"},
		{"binary: containerID with a slash", "pod/../x", "net1", "containerID"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newCNIEnv(t, node)
			before := e.homes(t, 1)
			pod := newPod(t)
			out, err := e.rawExec(t, 1, "ADD", tt.containerID, tt.ifName, pod, e.conf(1, inputVF, map[string]any{"cniVersion": "1.0.0"}))
			if err == nil {
				t.Fatalf("ADD succeeded: %s", out)
			}
			checkRefusal(t, err, types.ErrInvalidEnvironmentVariables, []string{tt.mention})
			if diff := cmp.Diff(before, e.homes(t, 1)); diff != "" {
				t.Errorf("the refused ADD changed the worker's VFs (-before +after):\n%s", diff)
			}
			if f := filesUnder(t, e.dataDirs[1]); len(f) != 0 {
				t.Errorf("files in dataDir: %v", f)
			}
		})
	}
}

// checkRefusal checks a refused ADD's error: a *types.Error, the code, a one-line
// message that names every word of mention.
func checkRefusal(t *testing.T, err error, code uint, mention []string) {
	t.Helper()
	var te *types.Error
	if !errors.As(err, &te) {
		t.Fatalf("error %v (%T) is not a *types.Error", err, err)
	}
	if te.Code != code {
		t.Errorf("code %d, want %d (%v)", te.Code, code, te)
	}
	msg := te.Error()
	t.Logf("code %d: %s", te.Code, msg)
	for _, m := range mention {
		if !strings.Contains(msg, m) {
			t.Errorf("message %q does not name %s", msg, m)
		}
	}
	if strings.ContainsAny(msg, "\r\n") {
		t.Errorf("message spans lines: %q", msg)
	}
}

// TestPrivilegedCNIBusyVF: pod B's ADD of the VF that pod A holds is refused with
// code 101 and harms nothing of A's (net1 with its MTU, MAC, address, up; its lease);
// B gets no net1 and no lease, and the DEL the runtime sends after B's failed ADD
// changes nothing either. Once A is gone, B's ADD works.
func TestPrivilegedCNIBusyVF(t *testing.T) {
	roottest.Require(t)
	const macA, macB = "0a:58:c6:33:64:41", "0a:58:c6:33:64:42"
	node := upNode(t, "--vfs", "2")
	e := newCNIEnv(t, node)
	before, beforePF := e.home(t, 1, inputVF), e.pfConfig(t, 1, inputVF)
	confA := e.conf(1, inputVF, map[string]any{"cniVersion": "1.0.0", "mtu": 9000, "mac": macA})
	confB := e.conf(1, inputVF, map[string]any{"cniVersion": "1.0.0", "mtu": 4000, "mac": macB})
	podA, podB := newPod(t), newPod(t)
	pa := addOK(t, e, "pod-a", podA, confA, 9000, macA)
	leasesA := e.leaseOwners(t)

	assertAUnharmed := func(when string) {
		t.Helper()
		got, ok := podIfaceOf(t, podA, "net1")
		if !ok {
			t.Fatalf("%s: pod A lost net1", when)
		}
		if diff := cmp.Diff(pa, got); diff != "" {
			t.Errorf("%s: A's net1 changed (-before +after):\n%s", when, diff)
		}
		if _, ok := podIfaceOf(t, podB, "net1"); ok {
			t.Errorf("%s: pod B has a net1", when)
		}
		if diff := cmp.Diff(leasesA, e.leaseOwners(t)); diff != "" {
			t.Errorf("%s: leases changed (-A's +now):\n%s", when, diff)
		}
	}

	_, err := e.add(1, "pod-b", podB, confB)
	if err == nil {
		t.Fatal("B's ADD of A's VF succeeded")
	}
	checkRefusal(t, err, 101, []string{inputVF, "pod-a"})
	assertAUnharmed("after B's ADD")

	if err := e.del(1, "pod-b", podB, confB); err != nil {
		t.Errorf("DEL after B's failed ADD: %v", err)
	}
	assertAUnharmed("after B's DEL")

	if err := e.del(1, "pod-a", podA, confA); err != nil {
		t.Fatalf("A's DEL: %v", err)
	}
	assertReleased(t, e, inputVF, before, &beforePF)
	addOK(t, e, "pod-b", podB, confB, 4000, macB)
	if err := e.del(1, "pod-b", podB, confB); err != nil {
		t.Fatalf("B's DEL: %v", err)
	}
	assertReleased(t, e, inputVF, before, &beforePF)
}
