package vf_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/emulate/sysfstree"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// mgmtAdapter is a T62100-CR (two 100G ports) with 4 VFs on PF0 (VF1 on vfio-pci,
// VF2 unbound) and 2 on PF1, as in docs/hardware.md section 7.
var mgmtAdapter = sysfstree.Adapter{
	Model: "T62100-CR", VFs: [4]int{4, 2, 0, 0},
	Drivers: map[sysfstree.VFRef]string{{PF: 0, VF: 1}: vf.DriverVFIO, {PF: 0, VF: 2}: ""},
}

func mgmtTree(t testing.TB, adapters ...sysfstree.Adapter) *sysfstree.Tree {
	t.Helper()
	tree, err := sysfstree.Build(t.TempDir(), sysfstree.Options{}, adapters...)
	if err != nil {
		t.Fatalf("sysfstree.Build() error: %v", err)
	}
	return tree
}

// setNetAttr writes class/net/<netdev>/<attr>, creating it (speed is not in trees).
func setNetAttr(t testing.TB, tree *sysfstree.Tree, netdev, attr, value string) {
	t.Helper()
	if err := os.WriteFile(tree.Root.Path("class/net", netdev, attr), []byte(value+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func removeNetAttr(t testing.TB, tree *sysfstree.Tree, netdev, attr string) {
	t.Helper()
	if err := os.Remove(tree.Root.Path("class/net", netdev, attr)); err != nil {
		t.Fatal(err)
	}
}

func mac(t testing.TB, s string) net.HardwareAddr {
	t.Helper()
	m, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// checkVFError checks that err is a *vf.VFError for op on mgmt vf whose cause
// matches errno.
func checkVFError(t *testing.T, err error, op, mgmt string, vfIdx int, errno syscall.Errno) {
	t.Helper()
	var ve *vf.VFError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T), want a *vf.VFError", err, err)
	}
	if ve.Op != op || ve.Mgmt != mgmt || ve.VF != vfIdx {
		t.Errorf("VFError{Op: %q, Mgmt: %q, VF: %d}, want {%q, %q, %d}", ve.Op, ve.Mgmt, ve.VF, op, mgmt, vfIdx)
	}
	if !errors.Is(err, errno) {
		t.Errorf("error %q does not match %v (%d) with errors.Is", err, errno, int(errno))
	}
	if want := op + " " + mgmt + " vf "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q does not start with %q", err, want)
	}
}

func TestEmulatedMgmtRefusals(t *testing.T) {
	const (
		mgmt0 = "mgmtpf1,0" // PF0: 4 VFs, port 0 (enp129s0f4)
		port0 = "enp129s0f4"
	)
	linkUp := func(t *testing.T, tree *sysfstree.Tree) { setNetAttr(t, tree, port0, "carrier", "1") }
	tests := []struct {
		name  string
		adapt *sysfstree.Adapter // default mgmtAdapter
		setup func(t *testing.T, tree *sysfstree.Tree)
		call  func(m vf.Mgmt) error
		op    string
		mgmt  string
		vf    int
		errno syscall.Errno
	}{
		{
			name: "no such netdev", op: vf.OpSetVLAN, mgmt: "mgmtpf9,0", errno: syscall.ENODEV,
			call: func(m vf.Mgmt) error { return m.SetVFVLAN("mgmtpf9,0", 0, 100) },
		},
		{
			name: "management netdev of a PF without VFs", op: vf.OpSetMAC, mgmt: "mgmtpf1,2", errno: syscall.ENODEV,
			call: func(m vf.Mgmt) error { return m.SetVFMAC("mgmtpf1,2", 0, mac(t, "02:00:00:00:00:01")) },
		},
		{
			name: "netdev name with a slash", op: vf.OpVFConfig, mgmt: "../mgmtpf1,0", errno: syscall.ENODEV,
			call: func(m vf.Mgmt) error { _, err := m.VFConfig("../mgmtpf1,0", 0); return err },
		},
		{
			name: "empty netdev name", op: vf.OpSetRate, mgmt: "", errno: syscall.ENODEV,
			call: func(m vf.Mgmt) error { return m.SetVFRate("", 0, 0) },
		},
		{
			name: "PF4 port netdev has no VF operations", op: vf.OpSetVLAN, mgmt: port0, errno: syscall.EOPNOTSUPP,
			call: func(m vf.Mgmt) error { return m.SetVFVLAN(port0, 0, 100) },
		},
		{
			name: "VF netdev has no VF operations", op: vf.OpSetLinkState, mgmt: "enp129s1", errno: syscall.EOPNOTSUPP,
			call: func(m vf.Mgmt) error { return m.SetVFLinkState("enp129s1", 0, vf.LinkStateEnable) },
		},
		{
			name: "loopback has no VF operations", op: vf.OpVFConfig, mgmt: "lo", errno: syscall.EOPNOTSUPP,
			call: func(m vf.Mgmt) error { _, err := m.VFConfig("lo", 0); return err },
		},
		{
			name: "VLAN on VF index = sriov_numvfs", op: vf.OpSetVLAN, mgmt: mgmt0, vf: 4, errno: syscall.EINVAL,
			call: func(m vf.Mgmt) error { return m.SetVFVLAN(mgmt0, 4, 100) },
		},
		{
			name: "VLAN on the 2nd PF beyond its 2 VFs", op: vf.OpSetVLAN, mgmt: "mgmtpf1,1", vf: 2, errno: syscall.EINVAL,
			call: func(m vf.Mgmt) error { return m.SetVFVLAN("mgmtpf1,1", 2, 100) },
		},
		{
			name: "MAC on VF index = sriov_numvfs (cxgb4 does not check; the emulation does)", op: vf.OpSetMAC, mgmt: mgmt0, vf: 4, errno: syscall.EINVAL,
			call: func(m vf.Mgmt) error { return m.SetVFMAC(mgmt0, 4, mac(t, "02:00:00:00:00:01")) },
		},
		{
			name: "rate on VF index = sriov_numvfs", op: vf.OpSetRate, mgmt: mgmt0, vf: 4, errno: syscall.EINVAL, setup: linkUp,
			call: func(m vf.Mgmt) error { return m.SetVFRate(mgmt0, 4, 1000) },
		},
		{
			name: "state on VF index = sriov_numvfs", op: vf.OpSetLinkState, mgmt: mgmt0, vf: 4, errno: syscall.EINVAL,
			call: func(m vf.Mgmt) error { return m.SetVFLinkState(mgmt0, 4, vf.LinkStateAuto) },
		},
		{
			name: "negative VF index", op: vf.OpSetVLAN, mgmt: mgmt0, vf: -1, errno: syscall.EINVAL,
			call: func(m vf.Mgmt) error { return m.SetVFVLAN(mgmt0, -1, 100) },
		},
		{
			name: "config of VF index = sriov_numvfs is not listed", op: vf.OpVFConfig, mgmt: mgmt0, vf: 4, errno: syscall.ENOENT,
			call: func(m vf.Mgmt) error { _, err := m.VFConfig(mgmt0, 4); return err },
		},
		{
			name: "multicast MAC", op: vf.OpSetMAC, mgmt: mgmt0, vf: 0, errno: syscall.EINVAL,
			call: func(m vf.Mgmt) error { return m.SetVFMAC(mgmt0, 0, mac(t, "01:00:5e:00:00:01")) },
		},
		{
			name: "broadcast MAC", op: vf.OpSetMAC, mgmt: mgmt0, vf: 0, errno: syscall.EINVAL,
			call: func(m vf.Mgmt) error { return m.SetVFMAC(mgmt0, 0, mac(t, "ff:ff:ff:ff:ff:ff")) },
		},
		{
			name: "all-zero MAC", op: vf.OpSetMAC, mgmt: mgmt0, vf: 3, errno: syscall.EINVAL,
			call: func(m vf.Mgmt) error { return m.SetVFMAC(mgmt0, 3, mac(t, "00:00:00:00:00:00")) },
		},
		{
			name: "8-byte MAC", op: vf.OpSetMAC, mgmt: mgmt0, vf: 0, errno: syscall.EINVAL,
			call: func(m vf.Mgmt) error { return m.SetVFMAC(mgmt0, 0, mac(t, "02:00:00:00:00:00:00:01")) },
		},
		{
			name: "nil MAC", op: vf.OpSetMAC, mgmt: mgmt0, vf: 0, errno: syscall.EINVAL,
			call: func(m vf.Mgmt) error { return m.SetVFMAC(mgmt0, 0, nil) },
		},
		{
			name: "VLAN 4096", op: vf.OpSetVLAN, mgmt: mgmt0, vf: 0, errno: syscall.EINVAL,
			call: func(m vf.Mgmt) error { return m.SetVFVLAN(mgmt0, 0, 4096) },
		},
		{
			name: "VLAN -1", op: vf.OpSetVLAN, mgmt: mgmt0, vf: 0, errno: syscall.EINVAL,
			call: func(m vf.Mgmt) error { return m.SetVFVLAN(mgmt0, 0, -1) },
		},
		{
			name: "rate with the port link down", op: vf.OpSetRate, mgmt: mgmt0, vf: 0, errno: syscall.EINVAL,
			call: func(m vf.Mgmt) error { return m.SetVFRate(mgmt0, 0, 1000) },
		},
		{
			name: "rate with another port's link up", op: vf.OpSetRate, mgmt: mgmt0, vf: 0, errno: syscall.EINVAL,
			setup: func(t *testing.T, tree *sysfstree.Tree) { setNetAttr(t, tree, "enp129s0f4d1", "carrier", "1") },
			call:  func(m vf.Mgmt) error { return m.SetVFRate(mgmt0, 0, 1000) },
		},
		{
			name: "rate with no carrier file and operstate down", op: vf.OpSetRate, mgmt: mgmt0, vf: 0, errno: syscall.EINVAL,
			setup: func(t *testing.T, tree *sysfstree.Tree) { removeNetAttr(t, tree, port0, "carrier") },
			call:  func(m vf.Mgmt) error { return m.SetVFRate(mgmt0, 0, 1000) },
		},
		{
			name: "rate above the model's speed", op: vf.OpSetRate, mgmt: mgmt0, vf: 0, errno: syscall.EINVAL, setup: linkUp,
			call: func(m vf.Mgmt) error { return m.SetVFRate(mgmt0, 0, 100001) },
		},
		{
			name: "rate above the speed file", op: vf.OpSetRate, mgmt: mgmt0, vf: 3, errno: syscall.EINVAL,
			setup: func(t *testing.T, tree *sysfstree.Tree) {
				linkUp(t, tree)
				setNetAttr(t, tree, port0, "speed", "25000")
			},
			call: func(m vf.Mgmt) error { return m.SetVFRate(mgmt0, 3, 25001) },
		},
		{
			name: "rate above a T520-CR's 10G", op: vf.OpSetRate, mgmt: "mgmtpf1,1", vf: 0, errno: syscall.EINVAL,
			adapt: &sysfstree.Adapter{Model: "T520-CR", VFs: [4]int{0, 1, 0, 0}},
			setup: func(t *testing.T, tree *sysfstree.Tree) { setNetAttr(t, tree, "enp129s0f4d1", "carrier", "1") },
			call:  func(m vf.Mgmt) error { return m.SetVFRate("mgmtpf1,1", 0, 10001) },
		},
		{
			name: "rate without PF4", op: vf.OpSetRate, mgmt: mgmt0, vf: 0, errno: syscall.EINVAL,
			adapt: &sysfstree.Adapter{Model: "T62100-CR", VFs: [4]int{1, 0, 0, 0}, NoPF4: true},
			call:  func(m vf.Mgmt) error { return m.SetVFRate(mgmt0, 0, 1000) },
		},
		{
			name: "negative rate", op: vf.OpSetRate, mgmt: mgmt0, vf: 0, errno: syscall.EINVAL, setup: linkUp,
			call: func(m vf.Mgmt) error { return m.SetVFRate(mgmt0, 0, -1) },
		},
		{
			name: "bad link state", op: vf.OpSetLinkState, mgmt: mgmt0, vf: 0, errno: syscall.EINVAL,
			call: func(m vf.Mgmt) error { return m.SetVFLinkState(mgmt0, 0, "on") },
		},
		{
			name: "empty link state", op: vf.OpSetLinkState, mgmt: mgmt0, vf: 0, errno: syscall.EINVAL,
			call: func(m vf.Mgmt) error { return m.SetVFLinkState(mgmt0, 0, "") },
		},
	}
	// Refusals store nothing, so the cases without a setup of their own share a tree.
	shared := mgmtTree(t, mgmtAdapter)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tree := shared
			if tt.setup != nil || tt.adapt != nil {
				a := mgmtAdapter
				if tt.adapt != nil {
					a = *tt.adapt
				}
				tree = mgmtTree(t, a)
				if tt.setup != nil {
					tt.setup(t, tree)
				}
			}
			m := &vf.EmulatedMgmt{Root: tree.Root}
			checkVFError(t, tt.call(m), tt.op, tt.mgmt, tt.vf, tt.errno)
			// A refused call stores nothing.
			names, err := tree.Root.ReadDir("chelsio-emulated/vfconfig")
			for _, n := range names {
				if strings.HasSuffix(n, ".json") {
					t.Errorf("refused call left %s", n)
				}
			}
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Error(err)
			}
		})
	}
}

func TestEmulatedMgmtSettings(t *testing.T) {
	const mgmt0 = "mgmtpf1,0"
	// VF0 of PF0 has a netdev whose address is the default MAC; VF1 (vfio-pci) has none.
	vf0MAC := sysfstree.VFMAC(0x810000, 0, 0, 16)
	auto := vf.VFConfig{LinkState: vf.LinkStateAuto}
	// port0 sets attributes of port 0's netdev, name and value in turn.
	port0 := func(nameValues ...string) func(t *testing.T, tree *sysfstree.Tree) {
		return func(t *testing.T, tree *sysfstree.Tree) {
			for i := 0; i+1 < len(nameValues); i += 2 {
				setNetAttr(t, tree, "enp129s0f4", nameValues[i], nameValues[i+1])
			}
		}
	}
	rate1 := func(mbps int) func(t *testing.T, m vf.Mgmt, _ *sysfstree.Tree) error {
		return func(t *testing.T, m vf.Mgmt, _ *sysfstree.Tree) error { return m.SetVFRate(mgmt0, 1, mbps) }
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, tree *sysfstree.Tree)
		calls func(t *testing.T, m vf.Mgmt, tree *sysfstree.Tree) error
		vf    int
		want  vf.VFConfig
	}{
		{name: "defaults: the VF netdev's MAC", vf: 0, want: vf.VFConfig{MAC: vf0MAC, LinkState: vf.LinkStateAuto}},
		{name: "defaults: vfio-pci VF has no MAC", vf: 1, want: auto},
		{name: "defaults: unbound VF has no MAC", vf: 2, want: auto},
		{
			name: "MAC stored lower-case", vf: 1,
			calls: func(t *testing.T, m vf.Mgmt, _ *sysfstree.Tree) error {
				return m.SetVFMAC(mgmt0, 1, mac(t, "02:AB:CD:00:00:01"))
			},
			want: vf.VFConfig{MAC: "02:ab:cd:00:00:01", LinkState: vf.LinkStateAuto},
		},
		{
			name: "MAC replaces the netdev's", vf: 0,
			calls: func(t *testing.T, m vf.Mgmt, _ *sysfstree.Tree) error {
				return m.SetVFMAC(mgmt0, 0, mac(t, "02:00:00:00:00:09"))
			},
			want: vf.VFConfig{MAC: "02:00:00:00:00:09", LinkState: vf.LinkStateAuto},
		},
		{
			name: "VLAN 4095", vf: 3,
			calls: func(t *testing.T, m vf.Mgmt, _ *sysfstree.Tree) error { return m.SetVFVLAN(mgmt0, 3, 4095) },
			want:  vf.VFConfig{MAC: sysfstree.VFMAC(0x810000, 0, 3, 16), VLAN: 4095, LinkState: vf.LinkStateAuto},
		},
		{
			name: "VLAN 0 clears", vf: 1,
			calls: func(t *testing.T, m vf.Mgmt, _ *sysfstree.Tree) error {
				return errors.Join(m.SetVFVLAN(mgmt0, 1, 100), m.SetVFVLAN(mgmt0, 1, 0))
			},
			want: auto,
		},
		{
			name: "rate 0 with the link down", vf: 1,
			calls: rate1(0),
			want:  auto,
		},
		{
			name: "rate up to the model's speed (T62100-CR: 100G)", vf: 1,
			setup: port0("carrier", "1"),
			calls: rate1(100000),
			want:  vf.VFConfig{MaxTxRate: 100000, LinkState: vf.LinkStateAuto},
		},
		{
			name: "rate up to the speed file", vf: 1,
			setup: port0("carrier", "1", "speed", "25000"),
			calls: rate1(25000),
			want:  vf.VFConfig{MaxTxRate: 25000, LinkState: vf.LinkStateAuto},
		},
		{
			name: "rate with speed -1 (unknown): the model's", vf: 1,
			setup: port0("carrier", "1", "speed", "-1"),
			calls: rate1(40000),
			want:  vf.VFConfig{MaxTxRate: 40000, LinkState: vf.LinkStateAuto},
		},
		{
			name: "rate with no carrier file and operstate up", vf: 1,
			setup: func(t *testing.T, tree *sysfstree.Tree) {
				removeNetAttr(t, tree, "enp129s0f4", "carrier")
				setNetAttr(t, tree, "enp129s0f4", "operstate", "up")
			},
			calls: rate1(1000),
			want:  vf.VFConfig{MaxTxRate: 1000, LinkState: vf.LinkStateAuto},
		},
		{
			name: "rate 0 removes the cap, link down", vf: 1,
			setup: port0("carrier", "1"),
			calls: func(t *testing.T, m vf.Mgmt, tree *sysfstree.Tree) error {
				if err := m.SetVFRate(mgmt0, 1, 5000); err != nil {
					return err
				}
				setNetAttr(t, tree, "enp129s0f4", "carrier", "0")
				return m.SetVFRate(mgmt0, 1, 0)
			},
			want: auto,
		},
		{
			name: "link state", vf: 2,
			calls: func(t *testing.T, m vf.Mgmt, _ *sysfstree.Tree) error {
				return m.SetVFLinkState(mgmt0, 2, vf.LinkStateDisable)
			},
			want: vf.VFConfig{LinkState: vf.LinkStateDisable},
		},
		{
			name: "everything", vf: 3,
			setup: port0("carrier", "1"),
			calls: func(t *testing.T, m vf.Mgmt, _ *sysfstree.Tree) error {
				return errors.Join(
					m.SetVFMAC(mgmt0, 3, mac(t, "02:00:00:00:03:03")),
					m.SetVFVLAN(mgmt0, 3, 42),
					m.SetVFRate(mgmt0, 3, 2500),
					m.SetVFLinkState(mgmt0, 3, vf.LinkStateEnable),
				)
			},
			want: vf.VFConfig{MAC: "02:00:00:00:03:03", VLAN: 42, MaxTxRate: 2500, LinkState: vf.LinkStateEnable},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tree := mgmtTree(t, mgmtAdapter)
			if tt.setup != nil {
				tt.setup(t, tree)
			}
			if tt.calls != nil {
				if err := tt.calls(t, &vf.EmulatedMgmt{Root: tree.Root}, tree); err != nil {
					t.Fatalf("setting error: %v", err)
				}
			}
			// A second value, as another process would have: the state is on disk.
			got, err := vf.EmulatedMgmt{Root: tree.Root}.VFConfig(mgmt0, tt.vf)
			if err != nil {
				t.Fatalf("VFConfig() error: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("VFConfig() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestEmulatedMgmtIsolation checks that settings stay with their VF and PF.
func TestEmulatedMgmtIsolation(t *testing.T) {
	tree := mgmtTree(t, mgmtAdapter, sysfstree.Adapter{Model: "T540-CR", VFs: [4]int{2, 0, 0, 0}})
	m := vf.NewMgmt(tree.Root)
	for _, c := range []struct {
		mgmt     string
		vf, vlan int
	}{{"mgmtpf1,0", 0, 10}, {"mgmtpf1,1", 0, 20}, {"mgmtpf2,0", 0, 30}, {"mgmtpf1,0", 1, 40}} {
		if err := m.SetVFVLAN(c.mgmt, c.vf, c.vlan); err != nil {
			t.Fatalf("SetVFVLAN(%s, %d) error: %v", c.mgmt, c.vf, err)
		}
	}
	got := map[string]int{}
	for _, c := range []struct {
		mgmt string
		vf   int
	}{{"mgmtpf1,0", 0}, {"mgmtpf1,0", 1}, {"mgmtpf1,0", 2}, {"mgmtpf1,1", 0}, {"mgmtpf1,1", 1}, {"mgmtpf2,0", 0}, {"mgmtpf2,0", 1}} {
		cfg, err := m.VFConfig(c.mgmt, c.vf)
		if err != nil {
			t.Fatalf("VFConfig(%s, %d) error: %v", c.mgmt, c.vf, err)
		}
		got[c.mgmt+" vf "+string(rune('0'+c.vf))] = cfg.VLAN
	}
	want := map[string]int{
		"mgmtpf1,0 vf 0": 10, "mgmtpf1,0 vf 1": 40, "mgmtpf1,0 vf 2": 0,
		"mgmtpf1,1 vf 0": 20, "mgmtpf1,1 vf 1": 0, "mgmtpf2,0 vf 0": 30, "mgmtpf2,0 vf 1": 0,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("VLANs mismatch (-want +got):\n%s", diff)
	}
	files, err := filepath.Glob(tree.Root.Path("chelsio-emulated/vfconfig/*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range files {
		files[i] = filepath.Base(files[i])
	}
	if diff := cmp.Diff([]string{"mgmtpf1,0.json", "mgmtpf1,1.json", "mgmtpf2,0.json"}, files); diff != "" {
		t.Errorf("vfconfig files mismatch (-want +got):\n%s", diff)
	}
}

func TestEmulatedMgmtConcurrent(t *testing.T) {
	tree := mgmtTree(t, sysfstree.Adapter{Model: "T62100-CR", VFs: [4]int{16, 0, 0, 0}})
	const mgmt0 = "mgmtpf1,0"
	var wg sync.WaitGroup
	errs := make([]error, 16)
	for k := range 16 {
		wg.Go(func() {
			// One value per goroutine, as separate processes would have.
			m := &vf.EmulatedMgmt{Root: tree.Root}
			errs[k] = m.SetVFVLAN(mgmt0, k, 100+k)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("SetVFVLAN() errors: %v", err)
	}
	m := vf.EmulatedMgmt{Root: tree.Root}
	for k := range 16 {
		c, err := m.VFConfig(mgmt0, k)
		if err != nil {
			t.Fatalf("VFConfig(%d) error: %v", k, err)
		}
		if c.VLAN != 100+k {
			t.Errorf("VFConfig(%d).VLAN = %d, want %d", k, c.VLAN, 100+k)
		}
	}
	if left, _ := filepath.Glob(tree.Root.Path("chelsio-emulated/vfconfig/*.tmp")); len(left) > 0 {
		t.Errorf("temporary files left: %q", left)
	}
}

func TestEmulatedMgmtCorruptFile(t *testing.T) {
	tree := mgmtTree(t, mgmtAdapter)
	if err := os.MkdirAll(tree.Root.Path("chelsio-emulated/vfconfig"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := tree.Root.Path("chelsio-emulated/vfconfig/mgmtpf1,0.json")
	if err := os.WriteFile(p, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := vf.EmulatedMgmt{Root: tree.Root}
	for name, err := range map[string]error{
		"VFConfig":  func() error { _, err := m.VFConfig("mgmtpf1,0", 0); return err }(),
		"SetVFVLAN": m.SetVFVLAN("mgmtpf1,0", 0, 5),
	} {
		var ve *vf.VFError
		if !errors.As(err, &ve) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s on a corrupt file: %v, want a *vf.VFError naming %s", name, err, p)
		}
	}
}

func TestNewMgmt(t *testing.T) {
	tree := mgmtTree(t)
	if got, ok := vf.NewMgmt(tree.Root).(*vf.EmulatedMgmt); !ok || got.Root != tree.Root {
		t.Errorf("NewMgmt(sysfstree tree) = %#v, want &EmulatedMgmt{Root: %q}", vf.NewMgmt(tree.Root), tree.Root)
	}
	plain := sysfs.Root(t.TempDir())
	if got, ok := vf.NewMgmt(plain).(vf.NetlinkMgmt); !ok || got != (vf.NetlinkMgmt{}) {
		t.Errorf("NewMgmt(dir without marker) = %#v, want NetlinkMgmt{}", vf.NewMgmt(plain))
	}
	// A file of that name is not the marker.
	if err := os.WriteFile(plain.Path(vf.EmulatedMarker), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, ok := vf.NewMgmt(plain).(vf.NetlinkMgmt); !ok {
		t.Errorf("NewMgmt(dir with a marker file) = %#v, want NetlinkMgmt", vf.NewMgmt(plain))
	}
}

func TestVFError(t *testing.T) {
	err := error(&vf.VFError{Op: vf.OpSetVLAN, Mgmt: "mgmtpf1,0", VF: 3, Err: syscall.EOPNOTSUPP})
	if got, want := err.Error(), "set-vlan mgmtpf1,0 vf 3: operation not supported"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, syscall.EOPNOTSUPP) {
		t.Error("errors.Is(VFError, EOPNOTSUPP) = false")
	}
	if errors.Is(err, syscall.EINVAL) {
		t.Error("errors.Is(VFError{EOPNOTSUPP}, EINVAL) = true")
	}
}

func TestValidateMAC(t *testing.T) {
	tests := []struct {
		in      string // "" = nil
		wantErr bool
	}{
		{"02:00:00:00:00:01", false},
		{"00:07:43:12:34:56", false},
		{"fe:ff:ff:ff:ff:ff", false},
		{"01:00:5e:00:00:01", true},
		{"33:33:00:00:00:01", true},
		{"ff:ff:ff:ff:ff:ff", true},
		{"00:00:00:00:00:00", true},
		{"02:00:00:00:00:00:00:01", true},
		{"", true},
	}
	for _, tt := range tests {
		var m net.HardwareAddr
		if tt.in != "" {
			m = mac(t, tt.in)
		}
		err := vf.ValidateMAC(m)
		if (err != nil) != tt.wantErr {
			t.Errorf("ValidateMAC(%s) = %v, want error %v", tt.in, err, tt.wantErr)
		}
		if err != nil && !errors.Is(err, syscall.EINVAL) {
			t.Errorf("ValidateMAC(%s) error %v does not wrap EINVAL", tt.in, err)
		}
	}
}

func TestValidateVLAN(t *testing.T) {
	for vlan, ok := range map[int]bool{-1: false, 0: true, 1: true, 100: true, 4094: true, 4095: true, 4096: false, 1 << 20: false} {
		err := vf.ValidateVLAN(vlan)
		if (err == nil) != ok {
			t.Errorf("ValidateVLAN(%d) = %v, want ok %v", vlan, err, ok)
		}
		if err != nil && !errors.Is(err, syscall.EINVAL) {
			t.Errorf("ValidateVLAN(%d) error %v does not wrap EINVAL", vlan, err)
		}
	}
}

func TestParseLinkState(t *testing.T) {
	for in, want := range map[string]vf.LinkState{"auto": vf.LinkStateAuto, "enable": vf.LinkStateEnable, "disable": vf.LinkStateDisable} {
		if got, err := vf.ParseLinkState(in); err != nil || got != want {
			t.Errorf("ParseLinkState(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "Auto", "on", "enabled", " auto"} {
		if got, err := vf.ParseLinkState(in); err == nil || !errors.Is(err, syscall.EINVAL) {
			t.Errorf("ParseLinkState(%q) = %q, %v; want an EINVAL error", in, got, err)
		}
	}
}
