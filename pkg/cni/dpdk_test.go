package cni_test

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cni"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/emulate/sysfstree"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// DPDK mode: a VF bound to vfio-pci has no netdev, so the plugin applies PF-side
// settings only. These tests need no privileges: a sysfstree tree, vf.EmulatedMgmt for
// the PF side, and a host namespace that fails the test if the plugin enters it.

// noNetNS is a host namespace that DPDK mode must never use: entering it fails the
// test.
type noNetNS struct{ t *testing.T }

func (n noNetNS) Do(func(ns.NetNS) error) error {
	n.t.Helper()
	n.t.Error("DPDK mode entered the host network namespace")
	return errors.New("DPDK mode must not enter the host netns")
}

func (n noNetNS) Set() error {
	n.t.Error("DPDK mode switched to the host network namespace")
	return errors.New("DPDK mode must not enter the host netns")
}
func (noNetNS) Path() string { return "/nonexistent/host-netns" }
func (noNetNS) Fd() uintptr  { return ^uintptr(0) }
func (noNetNS) Close() error { return nil }

// dpdkNode is a T62100-CR with two VFs on PF0 (VF 1, 0000:81:01.4, on vfio-pci) and
// one on PF2 (0000:81:01.2, on vfio-pci), port 0's link up at 25 Gb/s.
type dpdkNode struct {
	tree    *sysfstree.Tree
	plugin  *cni.Plugin
	dataDir string
	port0   string // PF4's netdev of port 0
}

const (
	dpdkVF    = "0000:81:01.4" // PF0 VF 1, vfio-pci
	dpdkVFPF2 = "0000:81:01.2" // PF2 VF 0, vfio-pci
	netdevVF  = "0000:81:01.0" // PF0 VF 0, cxgb4vf
)

func newDPDKNode(t *testing.T, drivers map[sysfstree.VFRef]string) *dpdkNode {
	t.Helper()
	if drivers == nil {
		drivers = map[sysfstree.VFRef]string{{PF: 0, VF: 1}: "vfio-pci", {PF: 2, VF: 0}: "vfio-pci"}
	}
	tree, err := sysfstree.Build(t.TempDir(), sysfstree.Options{}, sysfstree.Adapter{VFs: [4]int{2, 0, 1}, Drivers: drivers})
	if err != nil {
		t.Fatal(err)
	}
	port0 := tree.Adapters[0].Ports[0].Name
	// cxgb4 takes a rate only with the port's link up, and at most its speed.
	for attr, val := range map[string]string{"carrier": "1", "operstate": "up"} {
		if err := tree.SetNetdevAttr(port0, attr, val); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(tree.Root.Path("class/net", port0, "speed"), []byte("25000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := cni.New(tree.Root, io.Discard)
	p.HostNS = noNetNS{t}
	tmp := t.TempDir()
	p.DataDirs = append(p.DataDirs, tmp) // as the node's administrator would allow it
	return &dpdkNode{tree: tree, plugin: p, dataDir: filepath.Join(tmp, "state"), port0: port0}
}

func (n *dpdkNode) conf(t *testing.T, deviceID string, over map[string]any) []byte {
	t.Helper()
	m := map[string]any{"cniVersion": "1.1.0", "name": "dpdk-net", "type": "chelsio-sriov", "deviceID": deviceID, "dataDir": n.dataDir}
	for k, v := range over {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (n *dpdkNode) args(containerID string, conf []byte) *skel.CmdArgs {
	// The runtime passes the pod's namespace; DPDK mode must not need it to exist.
	return &skel.CmdArgs{ContainerID: containerID, Netns: "/nonexistent/pod-netns", IfName: "net1", Args: "IgnoreUnknown=1", StdinData: conf}
}

// pf returns the management netdev and VF index of a VF of the tree.
// add runs ADD of conf for the pod "dpdk-pod", which must succeed, and returns
// its result.
func (n *dpdkNode) add(t *testing.T, conf []byte) *current.Result {
	t.Helper()
	r, err := n.plugin.Add(n.args("dpdk-pod", conf))
	if err != nil {
		t.Fatalf("Add: %v", err)
	}
	res, err := current.NewResultFromResult(r)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func (n *dpdkNode) pf(t *testing.T, addr string) (string, int) {
	t.Helper()
	v, err := vf.LookupVF(n.tree.Root, vf.MustParsePCIAddr(addr), vf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return v.MgmtNetdev, v.VFIndex
}

func (n *dpdkNode) vfConfig(t *testing.T, addr string) vf.VFConfig {
	t.Helper()
	mgmt, idx := n.pf(t, addr)
	c, err := vf.NewMgmt(n.tree.Root).VFConfig(mgmt, idx)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// stored lists the files the plugin keeps: its dataDir and the emulated PF's VF
// settings (chelsio-emulated/vfconfig).
func (n *dpdkNode) stored(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, dir := range []string{n.dataDir, n.tree.Root.Path(vf.EmulatedMarker)} {
		err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() {
				out = append(out, p)
			}
			return nil
		})
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	return out
}

// stateFiles lists the attachment and VF state files of the dataDir.
func (n *dpdkNode) stateFiles(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, d := range []string{"attachments", "vfs"} {
		entries, err := os.ReadDir(filepath.Join(n.dataDir, d))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, e := range entries {
			out = append(out, d+"/"+e.Name())
		}
	}
	return out
}

// TestDPDKAddDel attaches a vfio-pci VF with vlan, mac, max_tx_rate and link_state
// and no ipam: the result has the interface with the VF's PCI address and no
// sandbox; the PF shows the settings while attached, and the original ones after
// DEL. cxgb4 cannot clear a VF's PF-side MAC, so the MAC comes back only when the
// VF had one: once with a MAC the admin set before, once without.
func TestDPDKAddDel(t *testing.T) {
	const mac = "0a:58:c6:33:64:51"
	for _, tt := range []struct {
		name, adminMAC string
	}{
		{"admin set a PF-side MAC", "0a:58:c6:33:64:5f"},
		{"no PF-side MAC", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := newDPDKNode(t, nil)
			if tt.adminMAC != "" {
				mgmt, idx := n.pf(t, dpdkVF)
				hw, _ := net.ParseMAC(tt.adminMAC)
				if err := vf.NewMgmt(n.tree.Root).SetVFMAC(mgmt, idx, hw); err != nil {
					t.Fatal(err)
				}
			}
			orig := n.vfConfig(t, dpdkVF)
			conf := n.conf(t, dpdkVF, map[string]any{"vlan": 100, "mac": mac, "max_tx_rate": 1000, "link_state": "enable"})

			res := n.add(t, conf)
			want := []*current.Interface{{Name: "net1", Mac: mac, PciID: dpdkVF}}
			if diff := cmp.Diff(want, res.Interfaces); diff != "" {
				t.Errorf("result interfaces mismatch (-want +got):\n%s", diff)
			}
			if len(res.IPs) != 0 {
				t.Errorf("result IPs %v without ipam", res.IPs)
			}
			attached := vf.VFConfig{MAC: mac, VLAN: 100, MaxTxRate: 1000, LinkState: vf.LinkStateEnable}
			if diff := cmp.Diff(attached, n.vfConfig(t, dpdkVF)); diff != "" {
				t.Errorf("VF config while attached mismatch (-want +got):\n%s", diff)
			}
			if f := n.stateFiles(t); len(f) != 2 {
				t.Errorf("state files while attached: %v, want the attachment and the VF's owner", f)
			}

			var opts []cmp.Option
			if tt.adminMAC == "" {
				opts = append(opts, cmpopts.IgnoreFields(vf.VFConfig{}, "MAC"))
			}
			for i := 1; i <= 2; i++ { // a second Del is fine and changes nothing
				if err := n.plugin.Del(n.args("dpdk-pod", conf)); err != nil {
					t.Fatalf("Del #%d: %v", i, err)
				}
				got := n.vfConfig(t, dpdkVF)
				if diff := cmp.Diff(orig, got, opts...); diff != "" {
					t.Errorf("VF config after Del #%d mismatch (-before Add +after):\n%s", i, diff)
				}
				if tt.adminMAC == "" && i == 1 {
					t.Logf("PF-side MAC after Del: %q (none before; cxgb4 cannot clear it)", got.MAC)
				}
				if f := n.stateFiles(t); len(f) != 0 {
					t.Errorf("state files after Del #%d: %v", i, f)
				}
			}
		})
	}
}

// TestDPDKRefusedBeforeChange: settings cxgb4 would refuse are refused before
// anything is stored or applied, with code 7 and a message naming the cause.
func TestDPDKRefusedBeforeChange(t *testing.T) {
	tests := []struct {
		name     string
		deviceID string
		over     map[string]any
		setup    func(t *testing.T, n *dpdkNode)
		mention  []string
	}{
		{
			name: "max_tx_rate with the port's link down", deviceID: dpdkVF,
			over: map[string]any{"max_tx_rate": 1000},
			setup: func(t *testing.T, n *dpdkNode) {
				if err := n.tree.SetNetdevAttr(n.port0, "carrier", "0"); err != nil {
					t.Fatal(err)
				}
			},
			mention: []string{`"max_tx_rate"`, "down"},
		},
		{
			name: "max_tx_rate above the port speed", deviceID: dpdkVF,
			over:    map[string]any{"max_tx_rate": 40000},
			mention: []string{`"max_tx_rate"`, "40000", "25000"},
		},
		{
			name: "VF bound to no driver", deviceID: dpdkVF,
			setup: func(t *testing.T, n *dpdkNode) {
				if err := n.tree.Bind(vf.MustParsePCIAddr(dpdkVF), ""); err != nil {
					t.Fatal(err)
				}
			},
			mention: []string{"deviceID", dpdkVF, "no driver"},
		},
		{
			name: "VF-level setting without a management netdev", deviceID: dpdkVF,
			over:    map[string]any{"vlan": 100},
			setup:   removeMgmt,
			mention: []string{"deviceID", "management netdev"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newDPDKNode(t, nil)
			if tt.setup != nil {
				tt.setup(t, n)
			}
			r, err := n.plugin.Add(n.args("dpdk-pod", n.conf(t, tt.deviceID, tt.over)))
			if err == nil {
				t.Fatalf("Add succeeded: %v", r)
			}
			ce := cni.AsCNIError(err)
			if ce.Code != cni.CodeInvalidConfig {
				t.Errorf("code %d, want %d (%v)", ce.Code, cni.CodeInvalidConfig, err)
			}
			for _, m := range tt.mention {
				if !strings.Contains(ce.Msg, m) {
					t.Errorf("message %q does not name %s", ce.Msg, m)
				}
			}
			if s := n.stored(t); len(s) != 0 {
				t.Errorf("files stored by the refused Add: %v", s)
			}
		})
	}
}

// removeMgmt removes PF0's management netdev from the tree.
func removeMgmt(t *testing.T, n *dpdkNode) {
	t.Helper()
	b := n.tree.Adapters[0]
	if err := n.tree.RemoveNetdev(b.PFs[0], b.Mgmt[0]); err != nil {
		t.Fatal(err)
	}
	if v, err := vf.LookupVF(n.tree.Root, vf.MustParsePCIAddr(dpdkVF), vf.Options{}); err != nil || v.MgmtNetdev != "" {
		t.Fatalf("after removing %s: LookupVF = %+v, %v; want no management netdev", b.Mgmt[0], v, err)
	}
}

// TestDPDKPF2MACHint: when the PF refuses a VF's MAC on PF2 or PF3, the error says
// which kernels cannot set it; on PF0 it does not. The ADD is undone.
func TestDPDKPF2MACHint(t *testing.T) {
	for _, tt := range []struct {
		name     string
		deviceID string
		hint     bool
	}{
		{"PF2", dpdkVFPF2, true},
		{"PF0", dpdkVF, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := newDPDKNode(t, nil)
			orig := n.vfConfig(t, tt.deviceID)
			// Emulated cxgb4 fails every VF setting: its lock file cannot be opened.
			if err := os.MkdirAll(n.tree.Root.Path(vf.EmulatedMarker, "vfconfig", ".lock"), 0o755); err != nil {
				t.Fatal(err)
			}
			_, err := n.plugin.Add(n.args("dpdk-pod", n.conf(t, tt.deviceID, map[string]any{"mac": "0a:58:c6:33:64:52"})))
			if err == nil {
				t.Fatal("Add succeeded")
			}
			const hint = "cannot set the MAC of VFs of PF2/PF3"
			if got := strings.Contains(err.Error(), hint); got != tt.hint {
				t.Errorf("error %q: has the PF2/PF3 hint = %v, want %v", err, got, tt.hint)
			}
			if !strings.Contains(err.Error(), "0a:58:c6:33:64:52") {
				t.Errorf("error %q does not name the MAC", err)
			}
			if diff := cmp.Diff(orig, n.vfConfig(t, tt.deviceID)); diff != "" {
				t.Errorf("VF config after the failed Add mismatch (-before +after):\n%s", diff)
			}
			if f := n.stateFiles(t); len(f) != 0 {
				t.Errorf("state files after the failed Add: %v", f)
			}
		})
	}
}

// TestDPDKWithoutSettingsNeverQueriesPF: a netconf without VF-level settings never
// touches the PF: ADD and DEL of a DPDK VF work with the management netdev gone,
// and the emulated PF's VF config file is never created.
func TestDPDKWithoutSettingsNeverQueriesPF(t *testing.T) {
	n := newDPDKNode(t, nil)
	removeMgmt(t, n)
	conf := n.conf(t, dpdkVF, nil)
	res := n.add(t, conf)
	if diff := cmp.Diff([]*current.Interface{{Name: "net1", PciID: dpdkVF}}, res.Interfaces); diff != "" {
		t.Errorf("result interfaces mismatch (-want +got):\n%s", diff)
	}
	if err := n.plugin.Del(n.args("dpdk-pod", conf)); err != nil {
		t.Fatalf("Del: %v", err)
	}
	if f := n.stateFiles(t); len(f) != 0 {
		t.Errorf("state files after Del: %v", f)
	}
	if _, err := os.Stat(n.tree.Root.Path(vf.EmulatedMarker, "vfconfig")); !os.IsNotExist(err) {
		t.Errorf("%s exists (err %v): the PF was queried or changed", n.tree.Root.Path(vf.EmulatedMarker, "vfconfig"), err)
	}
}

// TestDPDKHostNSNil: with HostNS nil (the binary's default) DPDK ADD and DEL work
// too; the noNetNS tests above prove they never enter it.
func TestDPDKHostNSNil(t *testing.T) {
	n := newDPDKNode(t, nil)
	n.plugin.HostNS = nil
	conf := n.conf(t, dpdkVF, map[string]any{"vlan": 7})
	if _, err := n.plugin.Add(n.args("dpdk-pod", conf)); err != nil {
		t.Fatalf("Add: %v", err)
	}
	if got := n.vfConfig(t, dpdkVF).VLAN; got != 7 {
		t.Errorf("VLAN %d while attached, want 7", got)
	}
	if err := n.plugin.Del(n.args("dpdk-pod", conf)); err != nil {
		t.Fatalf("Del: %v", err)
	}
	if got := n.vfConfig(t, dpdkVF).VLAN; got != 0 {
		t.Errorf("VLAN %d after Del, want 0", got)
	}
}
