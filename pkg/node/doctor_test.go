package node

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cnistore"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/emulate/sysfstree"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// dpSocket is the socket chelsio-sriov-dp serves chelsio.com/vf on.
const dpSocket = "chelsio-sriov-chelsio_com_vf.sock"

// fixture is a healthy node: a T62100-CR with 2 VFs on PF0 (cxgb4vf) and 2 on PF1
// (the second on vfio-pci), ports and VF netdevs at MTU 9000, swap off, the modules
// and sysctls set, cxgb4vf and vfio-pci loaded at boot, the CNI plugin, Multus
// (thick: its config and shim) and both IPAM plugins installed, and
// chelsio-sriov-dp listening.
type fixture struct {
	tree *sysfstree.Tree
	b    *sysfstree.BuiltAdapter
	cfg  Config
	ln   *net.UnixListener
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	tree, err := sysfstree.Build(filepath.Join(dir, "sys"), sysfstree.Options{}, sysfstree.Adapter{
		VFs:     [4]int{2, 2, 0, 0},
		Drivers: map[sysfstree.VFRef]string{{PF: 1, VF: 1}: vf.DriverVFIO},
	})
	if err != nil {
		t.Fatal(err)
	}
	b := tree.Adapters[0]
	for _, p := range b.Ports {
		must(t, tree.SetNetdevAttr(p.Name, "mtu", "9000"))
	}
	for pf := range 4 {
		for _, v := range b.VFs[pf] {
			if v.Netdev.Name != "" {
				must(t, tree.SetNetdevAttr(v.Netdev.Name, "mtu", "9000"))
			}
		}
	}
	proc := filepath.Join(dir, "proc")
	writeFile(t, filepath.Join(proc, "swaps"), "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n", 0o444)
	writeFile(t, filepath.Join(proc, "modules"), "overlay 212992 0 - Live 0x0000000000000000\nbr_netfilter 32768 0 - Live 0x0000000000000000\nbridge 421888 1 br_netfilter, Live 0x0000000000000000\n", 0o444)
	writeFile(t, filepath.Join(proc, "sys/net/bridge/bridge-nf-call-iptables"), "1\n", 0o644)
	writeFile(t, filepath.Join(proc, "sys/net/ipv4/ip_forward"), "1\n", 0o644)
	cni := filepath.Join(dir, "cni")
	for _, n := range []string{PluginName, "multus-shim", DefaultIPAM, hostLocal} {
		writeFile(t, filepath.Join(cni, n), "#!/bin/sh\n", 0o755)
	}
	conf := filepath.Join(dir, "net.d")
	writeFile(t, filepath.Join(conf, "00-multus.conf"), `{"cniVersion":"1.0.0","name":"multus-cni-network","type":"multus-shim"}`, 0o600)
	etc := filepath.Join(dir, "etc")
	writeFile(t, filepath.Join(etc, "modules-load.d", "chelsio-sriov.conf"), "cxgb4vf\nvfio-pci\n", 0o644)
	// Socket paths are limited to 107 bytes: keep this one short.
	dp, err := os.MkdirTemp("", "dp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dp) })
	writeFile(t, filepath.Join(dp, "kubelet.sock"), "", 0o600)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dp, dpSocket), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return &fixture{
		tree: tree, b: b, ln: ln,
		cfg: Config{
			Sysfs: tree.Root, Proc: proc, CNIBinDir: cni, CNIConfDir: conf, EtcRoot: etc, DevicePluginDir: dp, CNIStateDir: filepath.Join(dir, "cni-state"), MTU: 9000, DialTimeout: 5 * time.Second,
			PolicyStatusFile: filepath.Join(dir, "policy-status.json"),
		},
	}
}

// saveState writes an attachment's state as the CNI plugin does, in a state
// directory of the plugin's modes.
func saveState(t *testing.T, fx *fixture, a *cnistore.Attachment) {
	t.Helper()
	for _, d := range []string{"", "attachments", "vfs", "locks"} {
		must(t, os.MkdirAll(filepath.Join(fx.cfg.CNIStateDir, d), 0o700))
		must(t, os.Chmod(filepath.Join(fx.cfg.CNIStateDir, d), 0o700))
	}
	must(t, cnistore.Store{Dir: fx.cfg.CNIStateDir}.SaveAttachment(a))
}

// noSRIOV removes the sriov_* files of a PF with no VFs, as the kernel shows a PF
// whose firmware config gives it no VFs.
func noSRIOV(t *testing.T, fx *fixture, pf int) {
	t.Helper()
	dir, err := fx.tree.FunctionDir(fx.b.PFs[pf])
	must(t, err)
	for _, f := range []string{"sriov_totalvfs", "sriov_numvfs", "sriov_offset", "sriov_stride", "sriov_drivers_autoprobe", "sriov_vf_device"} {
		must(t, os.Remove(fx.tree.Root.Path(dir, f)))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, p, content string, mode os.FileMode) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, []byte(content), mode))
}

func statuses(r Report) map[string]Status {
	m := map[string]Status{}
	for _, c := range r.Checks {
		m[c.Name] = c.Status
	}
	return m
}

func result(r Report, name string) Result {
	for _, c := range r.Checks {
		if c.Name == name {
			return c
		}
	}
	return Result{}
}

// TestDoctor breaks one thing at a time on a healthy node: the check that looks at it
// (and those that depend on it) must say WARN or FAIL and name the fix; every other
// check stays OK.
func TestDoctor(t *testing.T) {
	vfAddr := func(fx *fixture, pf, k int) vf.PCIAddr { return fx.b.VFs[pf][k].Addr }
	tests := []struct {
		name    string
		breakIt func(t *testing.T, fx *fixture)
		want    map[string]Status // checks that are not OK
		check   string            // whose finding and fix must mention...
		mention []string
	}{
		{name: "healthy node"},
		{
			name: "no Chelsio adapter",
			breakIt: func(t *testing.T, fx *fixture) {
				tr, err := sysfstree.NewTree(t.TempDir(), sysfstree.Options{})
				must(t, err)
				fx.cfg.Sysfs = tr.Root
			},
			want:    map[string]Status{CheckAdapters: Fail, CheckCxgb4: Warn, CheckVFs: Warn, CheckVFBinding: Warn, CheckMTU: Warn},
			check:   CheckAdapters,
			mention: []string{"no Chelsio adapter under", "lspci -d 1425:"},
		},
		{
			name:    "no sysfs",
			breakIt: func(t *testing.T, fx *fixture) { fx.cfg.Sysfs = sysfs.Root(t.TempDir()) },
			want:    map[string]Status{CheckAdapters: Fail, CheckCxgb4: Fail, CheckVFDrivers: Warn, CheckVFs: Warn, CheckVFBinding: Warn, CheckMTU: Warn},
			check:   CheckAdapters,
			mention: []string{"cannot list PCI devices", "--sysfs-root"},
		},
		{
			name: "a broken Chelsio function",
			breakIt: func(t *testing.T, fx *fixture) {
				dir, err := fx.tree.FunctionDir(fx.b.PFs[2])
				must(t, err)
				writeFile(t, fx.tree.Root.Path(dir, "sriov_totalvfs"), "x\n", 0o444)
			},
			want:    map[string]Status{CheckAdapters: Warn},
			check:   CheckAdapters,
			mention: []string{"1 Chelsio function skipped", "0000:81:00.2", "sriov_totalvfs", "chelsio-vf list"},
		},
		{
			// The firmware config gives PF2 no VFs: nothing wrong with the node.
			name:    "a PF without SR-IOV",
			breakIt: func(t *testing.T, fx *fixture) { noSRIOV(t, fx, 2) },
		},
		{
			// Nothing for cxgb4 to do on a PF without SR-IOV: its driver does not matter.
			name: "a PF without SR-IOV and no driver",
			breakIt: func(t *testing.T, fx *fixture) {
				noSRIOV(t, fx, 3)
				must(t, fx.tree.Bind(fx.b.PFs[3], ""))
			},
		},
		{
			name: "no PF with SR-IOV",
			breakIt: func(t *testing.T, fx *fixture) {
				for pf := range 4 {
					must(t, fx.tree.SetNumVFs(fx.b, pf, 0))
					noSRIOV(t, fx, pf)
				}
			},
			want:    map[string]Status{CheckVFs: Fail, CheckVFBinding: Warn},
			check:   CheckVFs,
			mention: []string{"no VFs: no PF0-3 has SR-IOV", "firmware config"},
		},
		{
			name: "a lease waiting for its IPAM plugin",
			breakIt: func(t *testing.T, fx *fixture) {
				saveState(t, fx, &cnistore.Attachment{ContainerID: "pod-a", IfName: "net1", Network: "n", Phase: cnistore.PhaseIPAMPending, IPAMType: "host-local"})
			},
			want:    map[string]Status{CheckCNIState: Warn},
			check:   CheckCNIState,
			mention: []string{"1 lease kept because DEL found no IPAM plugin (host-local)", "install host-local in"},
		},
		{
			name: "an attachment of a pod that is gone",
			breakIt: func(t *testing.T, fx *fixture) {
				saveState(t, fx, &cnistore.Attachment{ContainerID: "pod-b", IfName: "net1", Network: "n", Phase: cnistore.PhaseAttached, Netns: filepath.Join(t.TempDir(), "gone")})
			},
			want:    map[string]Status{CheckCNIState: Warn},
			check:   CheckCNIState,
			mention: []string{"1 attachment of pods whose network namespace is gone", "GC"},
		},
		{
			name: "a state directory the plugin refuses",
			breakIt: func(t *testing.T, fx *fixture) {
				real := t.TempDir()
				must(t, os.Chmod(real, 0o700))
				must(t, os.Symlink(real, fx.cfg.CNIStateDir))
			},
			want:    map[string]Status{CheckCNIState: Fail},
			check:   CheckCNIState,
			mention: []string{"cannot use its state", "symbolic link", "docs/errors.md"},
		},
		{
			name:    "cxgb4 not loaded",
			breakIt: func(t *testing.T, fx *fixture) { must(t, os.RemoveAll(fx.tree.Root.Path("bus/pci/drivers/cxgb4"))) },
			want:    map[string]Status{CheckCxgb4: Fail},
			check:   CheckCxgb4,
			mention: []string{"cxgb4 is not loaded", "modprobe cxgb4"},
		},
		{
			name:    "PF4 unbound",
			breakIt: func(t *testing.T, fx *fixture) { must(t, fx.tree.Bind(fx.b.PF4, "")) },
			want:    map[string]Status{CheckCxgb4: Fail},
			check:   CheckCxgb4,
			mention: []string{"PF4 0000:81:00.4 not on cxgb4 (no driver)", "echo 0000:81:00.4 > /sys/bus/pci/drivers/cxgb4/bind"},
		},
		{
			name:    "PF4 on another driver",
			breakIt: func(t *testing.T, fx *fixture) { must(t, fx.tree.Bind(fx.b.PF4, vf.DriverVFIO)) },
			want:    map[string]Status{CheckCxgb4: Fail},
			check:   CheckCxgb4,
			mention: []string{"(vfio-pci)", "echo 0000:81:00.4 > /sys/bus/pci/devices/0000:81:00.4/driver/unbind; echo 0000:81:00.4 > /sys/bus/pci/drivers/cxgb4/bind"},
		},
		{
			name: "PF4 without port netdevs",
			breakIt: func(t *testing.T, fx *fixture) {
				for _, p := range fx.b.Ports {
					must(t, fx.tree.RemoveNetdev(fx.b.PF4, p.Name))
				}
			},
			want:    map[string]Status{CheckCxgb4: Fail},
			check:   CheckCxgb4,
			mention: []string{"no port netdev (firmware not initialised)", "dmesg"},
		},
		{
			name:    "PF4 absent",
			breakIt: func(t *testing.T, fx *fixture) { must(t, fx.tree.RemoveFunction(fx.b.PF4)) },
			want:    map[string]Status{CheckCxgb4: Fail},
			check:   CheckCxgb4,
			mention: []string{"0000:81:00: no PF4"},
		},
		{
			name:    "PF3 unbound",
			breakIt: func(t *testing.T, fx *fixture) { must(t, fx.tree.Bind(fx.b.PFs[3], "")) },
			want:    map[string]Status{CheckCxgb4: Warn},
			check:   CheckCxgb4,
			mention: []string{"PF3 0000:81:00.3 not on cxgb4 (no driver): no VFs can be created there", "echo 0000:81:00.3 > /sys/bus/pci/drivers/cxgb4/bind"},
		},
		{
			name: "PF0-3 all unbound",
			breakIt: func(t *testing.T, fx *fixture) {
				for _, pf := range fx.b.PFs {
					must(t, fx.tree.Bind(pf, ""))
				}
			},
			want:    map[string]Status{CheckCxgb4: Fail},
			check:   CheckCxgb4,
			mention: []string{"PF0 0000:81:00.0 not on cxgb4", "PF3 0000:81:00.3 not on cxgb4", "echo 0000:81:00.0 > /sys/bus/pci/drivers/cxgb4/bind; echo 0000:81:00.1 > /sys/bus/pci/drivers/cxgb4/bind; echo 0000:81:00.2"},
		},
		{
			name:    "cxgb4vf not loaded",
			breakIt: func(t *testing.T, fx *fixture) { must(t, os.RemoveAll(fx.tree.Root.Path("bus/pci/drivers/cxgb4vf"))) },
			want:    map[string]Status{CheckVFDrivers: Warn},
			check:   CheckVFDrivers,
			mention: []string{"not loaded: cxgb4vf", "modprobe cxgb4vf"},
		},
		{
			name:    "vfio-pci not loaded",
			breakIt: func(t *testing.T, fx *fixture) { must(t, os.RemoveAll(fx.tree.Root.Path("bus/pci/drivers/vfio-pci"))) },
			want:    map[string]Status{CheckVFDrivers: Warn},
			check:   CheckVFDrivers,
			mention: []string{"not loaded: vfio-pci", "modprobe vfio-pci"},
		},
		{
			name: "no VFs",
			breakIt: func(t *testing.T, fx *fixture) {
				must(t, fx.tree.SetNumVFs(fx.b, 0, 0))
				must(t, fx.tree.SetNumVFs(fx.b, 1, 0))
			},
			want:    map[string]Status{CheckVFs: Fail, CheckVFBinding: Warn},
			check:   CheckVFs,
			mention: []string{"no VFs: sriov_numvfs is 0 on every PF0-3", "echo N > /sys/bus/pci/devices/0000:81:00.0/sriov_numvfs (N up to 16), or chelsio-vf setup"},
		},
		{
			name: "VF functions missing",
			breakIt: func(t *testing.T, fx *fixture) {
				must(t, fx.tree.RemoveFunction(vfAddr(fx, 0, 1)))
			},
			want:    map[string]Status{CheckVFs: Warn},
			check:   CheckVFs,
			mention: []string{"enables 4 VFs", "only 3 are listed"},
		},
		{
			name:    "VF unbound",
			breakIt: func(t *testing.T, fx *fixture) { must(t, fx.tree.Bind(vfAddr(fx, 0, 1), "")) },
			want:    map[string]Status{CheckVFBinding: Warn},
			check:   CheckVFBinding,
			mention: []string{"1 of 4 VFs unbound: 0000:81:01.4", "fix: echo 0000:81:01.4 > /sys/bus/pci/drivers/cxgb4vf/bind; or chelsio-vf setup"},
		},
		{
			name: "two VFs off their drivers",
			breakIt: func(t *testing.T, fx *fixture) {
				must(t, fx.tree.Bind(vfAddr(fx, 0, 0), ""))
				must(t, fx.tree.Bind(vfAddr(fx, 1, 1), "pci-stub"))
			},
			want:    map[string]Status{CheckVFBinding: Warn},
			check:   CheckVFBinding,
			mention: []string{"1 of 4 VFs unbound: 0000:81:01.0; 1 of 4 VFs on another driver: 0000:81:01.5 (pci-stub)", "fix: echo 0000:81:01.0 > /sys/bus/pci/drivers/cxgb4vf/bind, and likewise for each VF listed; or chelsio-vf setup"},
		},
		{
			name:    "VF on another driver",
			breakIt: func(t *testing.T, fx *fixture) { must(t, fx.tree.Bind(vfAddr(fx, 0, 0), "pci-stub")) },
			want:    map[string]Status{CheckVFBinding: Warn},
			check:   CheckVFBinding,
			mention: []string{"0000:81:01.0 (pci-stub)", "/sys/bus/pci/devices/0000:81:01.0/driver/unbind"},
		},
		{
			name: "no IOMMU groups with a VF on vfio-pci",
			breakIt: func(t *testing.T, fx *fixture) {
				must(t, os.RemoveAll(fx.tree.Root.Path("kernel/iommu_groups")))
				must(t, os.MkdirAll(fx.tree.Root.Path("kernel/iommu_groups"), 0o755))
			},
			want:    map[string]Status{CheckIOMMU: Warn},
			check:   CheckIOMMU,
			mention: []string{"1 VF on vfio-pci but no IOMMU groups", "intel_iommu=on"},
		},
		{
			name: "VF on vfio-pci without a group",
			breakIt: func(t *testing.T, fx *fixture) {
				dir, err := fx.tree.FunctionDir(vfAddr(fx, 1, 1))
				must(t, err)
				must(t, os.Remove(fx.tree.Root.Path(dir, "iommu_group")))
			},
			want:    map[string]Status{CheckIOMMU: Warn},
			check:   CheckIOMMU,
			mention: []string{"without an IOMMU group: 0000:81:01.5", "amd_iommu=on"},
		},
		{
			name: "no IOMMU groups, no VF on vfio-pci",
			breakIt: func(t *testing.T, fx *fixture) {
				must(t, fx.tree.Bind(vfAddr(fx, 1, 1), vf.DriverCxgb4VF))
				must(t, os.RemoveAll(fx.tree.Root.Path("kernel/iommu_groups")))
			},
		},
		{
			name:    "port MTU 1500",
			breakIt: func(t *testing.T, fx *fixture) { must(t, fx.tree.SetNetdevAttr(fx.b.Ports[1].Name, "mtu", "1500")) },
			want:    map[string]Status{CheckMTU: Warn},
			check:   CheckMTU,
			mention: []string{"below MTU 9000: enp129s0f4d1 (1500)", "ip link set dev enp129s0f4d1 mtu 9000"},
		},
		{
			name: "VF MTUs 1500",
			breakIt: func(t *testing.T, fx *fixture) {
				must(t, fx.tree.SetNetdevAttr(fx.b.VFs[0][0].Netdev.Name, "mtu", "1500"))
				must(t, fx.tree.SetNetdevAttr(fx.b.VFs[0][1].Netdev.Name, "mtu", "8999"))
			},
			want:    map[string]Status{CheckMTU: Warn},
			check:   CheckMTU,
			mention: []string{"enp129s1 (1500), enp129s1f4 (8999)", "ip link set dev enp129s1 mtu 9000, and likewise"},
		},
		{
			name: "MTU check off",
			breakIt: func(t *testing.T, fx *fixture) {
				must(t, fx.tree.SetNetdevAttr(fx.b.Ports[0].Name, "mtu", "1500"))
				fx.cfg.MTU = 0
			},
		},
		{
			name: "swap on",
			breakIt: func(t *testing.T, fx *fixture) {
				writeFile(t, filepath.Join(fx.cfg.Proc, "swaps"), "Filename\tType\tSize\tUsed\tPriority\n/swap.img                               file\t\t2097148\t\t0\t\t-2\n", 0o444)
			},
			want:    map[string]Status{CheckSwap: Fail},
			check:   CheckSwap,
			mention: []string{"swap is on: /swap.img (file, 2.0 GB)", "swapoff -a"},
		},
		{
			name:    "swaps unreadable",
			breakIt: func(t *testing.T, fx *fixture) { must(t, os.Remove(filepath.Join(fx.cfg.Proc, "swaps"))) },
			want:    map[string]Status{CheckSwap: Warn},
			check:   CheckSwap,
			mention: []string{"cannot tell whether swap is on", "--proc-root"},
		},
		{
			name: "br_netfilter not loaded",
			breakIt: func(t *testing.T, fx *fixture) {
				writeFile(t, filepath.Join(fx.cfg.Proc, "modules"), "overlay 212992 0 - Live 0x0000000000000000\n", 0o444)
			},
			want:    map[string]Status{CheckModules: Warn},
			check:   CheckModules,
			mention: []string{"not loaded: br_netfilter", "modprobe br_netfilter", "/etc/modules-load.d/"},
		},
		{
			name: "overlay built in",
			breakIt: func(t *testing.T, fx *fixture) {
				writeFile(t, filepath.Join(fx.cfg.Proc, "modules"), "br_netfilter 32768 0 - Live 0x0000000000000000\n", 0o444)
				must(t, os.MkdirAll(fx.tree.Root.Path("module/overlay"), 0o755))
			},
		},
		{
			name: "ip_forward off",
			breakIt: func(t *testing.T, fx *fixture) {
				writeFile(t, filepath.Join(fx.cfg.Proc, "sys/net/ipv4/ip_forward"), "0\n", 0o644)
			},
			want:    map[string]Status{CheckSysctls: Warn},
			check:   CheckSysctls,
			mention: []string{"net.ipv4.ip_forward = 0", "sysctl -w net.ipv4.ip_forward=1;"},
		},
		{
			name: "bridge-nf-call-iptables absent",
			breakIt: func(t *testing.T, fx *fixture) {
				must(t, os.RemoveAll(filepath.Join(fx.cfg.Proc, "sys/net/bridge")))
			},
			want:    map[string]Status{CheckSysctls: Warn},
			check:   CheckSysctls,
			mention: []string{"net.bridge.bridge-nf-call-iptables absent (br_netfilter not loaded)", "modprobe br_netfilter; sysctl -w net.bridge.bridge-nf-call-iptables=1;"},
		},
		{
			name:    "CNI binary missing",
			breakIt: func(t *testing.T, fx *fixture) { must(t, os.Remove(filepath.Join(fx.cfg.CNIBinDir, PluginName))) },
			want:    map[string]Status{CheckCNIBinary: Fail},
			check:   CheckCNIBinary,
			mention: []string{"not installed: no ", "chelsio-vf install-cni --dest "},
		},
		{
			name:    "CNI binary not executable",
			breakIt: func(t *testing.T, fx *fixture) { must(t, os.Chmod(filepath.Join(fx.cfg.CNIBinDir, PluginName), 0o644)) },
			want:    map[string]Status{CheckCNIBinary: Fail},
			check:   CheckCNIBinary,
			mention: []string{"is not executable (mode 0644)", "chelsio-vf install-cni"},
		},
		{
			name: "CNI binary a directory",
			breakIt: func(t *testing.T, fx *fixture) {
				p := filepath.Join(fx.cfg.CNIBinDir, PluginName)
				must(t, os.Remove(p))
				must(t, os.Mkdir(p, 0o755))
			},
			want:    map[string]Status{CheckCNIBinary: Fail},
			check:   CheckCNIBinary,
			mention: []string{"is not a regular file", "remove it, then chelsio-vf install-cni"},
		},
		{
			name: "Multus thin: its binary, no config yet",
			breakIt: func(t *testing.T, fx *fixture) {
				must(t, os.RemoveAll(fx.cfg.CNIConfDir))
				must(t, os.Rename(filepath.Join(fx.cfg.CNIBinDir, "multus-shim"), filepath.Join(fx.cfg.CNIBinDir, "multus")))
			},
			check:   CheckMultus,
			mention: []string{"found /", "/cni/multus"},
		},
		{
			name: "no Multus",
			breakIt: func(t *testing.T, fx *fixture) {
				must(t, os.Remove(filepath.Join(fx.cfg.CNIBinDir, "multus-shim")))
				must(t, os.Rename(filepath.Join(fx.cfg.CNIConfDir, "00-multus.conf"), filepath.Join(fx.cfg.CNIConfDir, "00-multus.conf.bak")))
				must(t, os.Mkdir(filepath.Join(fx.cfg.CNIConfDir, "multus.d"), 0o755))
			},
			want:    map[string]Status{CheckMultus: Warn},
			check:   CheckMultus,
			mention: []string{"no Multus: no *multus*.conf or .conflist in ", "no multus or multus-shim in ", "thick plugin DaemonSet", "NetworkAttachmentDefinition CRD"},
		},
		{
			name: "CNI config directory unreadable",
			breakIt: func(t *testing.T, fx *fixture) {
				must(t, os.Remove(filepath.Join(fx.cfg.CNIBinDir, "multus-shim")))
				must(t, os.RemoveAll(fx.cfg.CNIConfDir))
				writeFile(t, fx.cfg.CNIConfDir, "", 0o644)
			},
			want:    map[string]Status{CheckMultus: Warn},
			check:   CheckMultus,
			mention: []string{"net.d: not a directory)", "--cni-conf-dir"},
		},
		{
			name:    "only host-local",
			breakIt: func(t *testing.T, fx *fixture) { must(t, os.Remove(filepath.Join(fx.cfg.CNIBinDir, DefaultIPAM))) },
			want:    map[string]Status{CheckIPAM: Warn},
			check:   CheckIPAM,
			mention: []string{"/whereabouts; only ", "host-local keeps leases per node: fine for one node; the shipped NAD uses whereabouts", "install whereabouts", "doctor --ipam host-local"},
		},
		{
			name: "host-local as the NAD says",
			breakIt: func(t *testing.T, fx *fixture) {
				must(t, os.Remove(filepath.Join(fx.cfg.CNIBinDir, DefaultIPAM)))
				fx.cfg.IPAM = hostLocal
			},
			check:   CheckIPAM,
			mention: []string{"/cni/host-local (10 bytes, mode 0755)"},
		},
		{
			name: "no IPAM plugin",
			breakIt: func(t *testing.T, fx *fixture) {
				must(t, os.Remove(filepath.Join(fx.cfg.CNIBinDir, DefaultIPAM)))
				must(t, os.Remove(filepath.Join(fx.cfg.CNIBinDir, hostLocal)))
			},
			want:    map[string]Status{CheckIPAM: Fail},
			check:   CheckIPAM,
			mention: []string{"/whereabouts; nor host-local: no ", "its DaemonSet"},
		},
		{
			name: "whereabouts not executable, host-local empty",
			breakIt: func(t *testing.T, fx *fixture) {
				must(t, os.Chmod(filepath.Join(fx.cfg.CNIBinDir, DefaultIPAM), 0o644))
				writeFile(t, filepath.Join(fx.cfg.CNIBinDir, hostLocal), "", 0o755)
			},
			want:    map[string]Status{CheckIPAM: Fail},
			check:   CheckIPAM,
			mention: []string{"whereabouts is not executable (mode 0644); nor host-local: ", "host-local is empty"},
		},
		{
			name: "host-local named but missing",
			breakIt: func(t *testing.T, fx *fixture) {
				must(t, os.Remove(filepath.Join(fx.cfg.CNIBinDir, hostLocal)))
				fx.cfg.IPAM = hostLocal
			},
			want:    map[string]Status{CheckIPAM: Fail},
			check:   CheckIPAM,
			mention: []string{"/host-local", "containernetworking/plugins"},
		},
		{
			name:    "another IPAM plugin named",
			breakIt: func(t *testing.T, fx *fixture) { fx.cfg.IPAM = "static" },
			want:    map[string]Status{CheckIPAM: Warn},
			check:   CheckIPAM,
			mention: []string{"/static; only ", "the NetworkAttachmentDefinition names static", "install static in "},
		},
		{
			name:    "IPAM name a path",
			breakIt: func(t *testing.T, fx *fixture) { fx.cfg.IPAM = "../bin/whereabouts" },
			want:    map[string]Status{CheckIPAM: Fail},
			check:   CheckIPAM,
			mention: []string{`--ipam: invalid file name "../bin/whereabouts"`, "--ipam whereabouts"},
		},
		{
			name: "cxgb4vf loaded but not at boot",
			breakIt: func(t *testing.T, fx *fixture) {
				writeFile(t, filepath.Join(fx.cfg.EtcRoot, "modules-load.d", "chelsio-sriov.conf"), "vfio-pci\n", 0o644)
				writeFile(t, filepath.Join(fx.cfg.Proc, "modules"), "cxgb4vf 98304 0 - Live 0x0000000000000000\n", 0o444)
				must(t, os.MkdirAll(fx.tree.Root.Path("module/cxgb4vf"), 0o755))
			},
			want:    map[string]Status{CheckModules: Warn, CheckBootModules: Warn},
			check:   CheckBootModules,
			mention: []string{"not loaded at boot: cxgb4vf (named in no ", `printf 'cxgb4vf\nvfio-pci\n' > /etc/modules-load.d/chelsio-sriov.conf`},
		},
		{
			name: "no boot list, no VF on vfio-pci",
			breakIt: func(t *testing.T, fx *fixture) {
				must(t, fx.tree.Bind(vfAddr(fx, 1, 1), vf.DriverCxgb4VF))
				writeFile(t, filepath.Join(fx.cfg.EtcRoot, "modules-load.d", "chelsio-sriov.conf.off"), "cxgb4vf\n", 0o644)
				must(t, os.Remove(filepath.Join(fx.cfg.EtcRoot, "modules-load.d", "chelsio-sriov.conf")))
			},
			want:    map[string]Status{CheckBootModules: Warn},
			check:   CheckBootModules,
			mention: []string{"not loaded at boot: cxgb4vf (", "fix: echo cxgb4vf > /etc/modules-load.d/chelsio-sriov.conf"},
		},
		{
			name: "boot list in /etc/modules",
			breakIt: func(t *testing.T, fx *fixture) {
				must(t, os.RemoveAll(filepath.Join(fx.cfg.EtcRoot, "modules-load.d")))
				writeFile(t, filepath.Join(fx.cfg.EtcRoot, "modules"), "# modules to load at boot\n; vfio-pci\ncxgb4vf\nvfio_pci ids=1425:6801\n", 0o644)
			},
			check:   CheckBootModules,
			mention: []string{"cxgb4vf in /", "/etc/modules; vfio-pci in /"},
		},
		{
			name: "boot list in /usr/lib/modules-load.d",
			breakIt: func(t *testing.T, fx *fixture) {
				must(t, os.RemoveAll(filepath.Join(fx.cfg.EtcRoot, "modules-load.d")))
				writeFile(t, filepath.Join(filepath.Dir(fx.cfg.EtcRoot), "usr/lib/modules-load.d", "chelsio.conf"), "cxgb4vf\nvfio-pci\n", 0o644)
			},
			check:   CheckBootModules,
			mention: []string{"cxgb4vf in /", "/usr/lib/modules-load.d/chelsio.conf; vfio-pci in /"},
		},
		{
			name: "a /usr/lib list masked by an empty one of that name in /etc",
			breakIt: func(t *testing.T, fx *fixture) {
				writeFile(t, filepath.Join(fx.cfg.EtcRoot, "modules-load.d", "chelsio-sriov.conf"), "", 0o644)
				writeFile(t, filepath.Join(filepath.Dir(fx.cfg.EtcRoot), "usr/lib/modules-load.d", "chelsio-sriov.conf"), "cxgb4vf\nvfio-pci\n", 0o644)
			},
			want:    map[string]Status{CheckBootModules: Warn},
			check:   CheckBootModules,
			mention: []string{"not loaded at boot: cxgb4vf, vfio-pci (named in no ", "/usr/lib/modules-load.d/*.conf"},
		},
		{
			name: "cxgb4vf built in",
			breakIt: func(t *testing.T, fx *fixture) {
				writeFile(t, filepath.Join(fx.cfg.EtcRoot, "modules-load.d", "chelsio-sriov.conf"), "vfio-pci\n", 0o644)
				must(t, os.MkdirAll(fx.tree.Root.Path("module/cxgb4vf"), 0o755))
			},
			check:   CheckBootModules,
			mention: []string{"cxgb4vf built in; vfio-pci in "},
		},
		{
			name: "boot list unreadable",
			breakIt: func(t *testing.T, fx *fixture) {
				p := filepath.Join(fx.cfg.EtcRoot, "modules-load.d", "chelsio-sriov.conf")
				must(t, os.Remove(p))
				must(t, os.Mkdir(p, 0o755))
			},
			want:    map[string]Status{CheckBootModules: Warn},
			check:   CheckBootModules,
			mention: []string{"not loaded at boot: cxgb4vf, vfio-pci (", "chelsio-sriov.conf: is a directory"},
		},
		{
			name:    "no device plugin socket",
			breakIt: func(t *testing.T, fx *fixture) { must(t, fx.ln.Close()) },
			want:    map[string]Status{CheckDevicePlugin: Warn},
			check:   CheckDevicePlugin,
			mention: []string{"no chelsio-sriov-*.sock in", "chelsio-sriov-dp is not running", "start chelsio-sriov-dp"},
		},
		{
			name: "stale device plugin socket",
			breakIt: func(t *testing.T, fx *fixture) {
				fx.ln.SetUnlinkOnClose(false)
				must(t, fx.ln.Close())
			},
			want:    map[string]Status{CheckDevicePlugin: Warn},
			check:   CheckDevicePlugin,
			mention: []string{"nothing listens on " + dpSocket, "replaces stale sockets"},
		},
		{
			name:    "no device plugin directory",
			breakIt: func(t *testing.T, fx *fixture) { fx.cfg.DevicePluginDir = filepath.Join(t.TempDir(), "absent") },
			want:    map[string]Status{CheckDevicePlugin: Warn},
			check:   CheckDevicePlugin,
			mention: []string{"cannot read", "no such file or directory", "kubelet"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t)
			if tt.breakIt != nil {
				tt.breakIt(t, fx)
			}
			rep := Doctor(fx.cfg)
			want := map[string]Status{}
			for _, c := range Checks() {
				want[c.Name] = OK
			}
			wantOK := true
			for n, s := range tt.want {
				want[n] = s
				wantOK = wantOK && s != Fail
			}
			var text bytes.Buffer
			must(t, rep.WriteText(&text))
			if diff := cmp.Diff(want, statuses(rep)); diff != "" {
				t.Errorf("Doctor() statuses mismatch (-want +got):\n%s\nreport:\n%s", diff, text.String())
			}
			if rep.OK != wantOK {
				t.Errorf("Doctor().OK = %v, want %v", rep.OK, wantOK)
			}
			for _, c := range rep.Checks {
				if c.Finding == "" {
					t.Errorf("check %s has no finding", c.Name)
				}
				if (c.Status == OK) != (c.Fix == "") {
					t.Errorf("check %s: status %s with fix %q: want a fix exactly for WARN and FAIL", c.Name, c.Status, c.Fix)
				}
			}
			if tt.check != "" {
				r := result(rep, tt.check)
				got := r.Finding + "\nfix: " + r.Fix
				for _, m := range tt.mention {
					if !strings.Contains(got, m) {
						t.Errorf("check %s does not mention %q:\n%s", tt.check, m, got)
					}
				}
			}
		})
	}
}

func TestDoctorHealthyFindings(t *testing.T) {
	fx := newFixture(t)
	rep := Doctor(fx.cfg)
	want := map[string]string{
		CheckAdapters:     "T6 T62100-CR at 0000:81:00, 2 ports",
		CheckCxgb4:        "0000:81:00: PF4 up with 2 ports, PF0-3 bound",
		CheckVFDrivers:    "cxgb4vf and vfio-pci are loaded",
		CheckVFs:          "4 VFs: PF0 0000:81:00.0 2/16, PF1 0000:81:00.1 2/16",
		CheckVFBinding:    "4 VFs: 3 on cxgb4vf, 1 on vfio-pci",
		CheckMTU:          "2 ports and 3 VF netdevs at MTU 9000 or more",
		CheckSwap:         "swap is off",
		CheckModules:      "br_netfilter and overlay are loaded",
		CheckSysctls:      "net.bridge.bridge-nf-call-iptables = 1, net.ipv4.ip_forward = 1",
		CheckCNIBinary:    filepath.Join(fx.cfg.CNIBinDir, PluginName) + " (10 bytes, mode 0755)",
		CheckMultus:       "found " + filepath.Join(fx.cfg.CNIConfDir, "00-multus.conf") + ", " + filepath.Join(fx.cfg.CNIBinDir, "multus-shim"),
		CheckIPAM:         filepath.Join(fx.cfg.CNIBinDir, DefaultIPAM) + " (10 bytes, mode 0755); host-local too",
		CheckBootModules:  "cxgb4vf in " + filepath.Join(fx.cfg.EtcRoot, "modules-load.d", "chelsio-sriov.conf") + "; vfio-pci in " + filepath.Join(fx.cfg.EtcRoot, "modules-load.d", "chelsio-sriov.conf"),
		CheckDevicePlugin: "chelsio-sriov-dp listens on " + dpSocket,
		CheckCNIState:     "no attachment yet (no " + fx.cfg.CNIStateDir + ")",
		CheckPolicy:       "no node policy agent reports here (no " + fx.cfg.PolicyStatusFile + ")",
	}
	got := map[string]string{}
	for _, c := range rep.Checks {
		if c.Name != CheckIOMMU { // group numbers depend on the tree builder
			got[c.Name] = c.Finding
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Doctor() findings mismatch (-want +got):\n%s", diff)
	}
	if f := result(rep, CheckIOMMU).Finding; !strings.Contains(f, "IOMMU groups; 1 VF on vfio-pci, in group ") {
		t.Errorf("iommu finding = %q", f)
	}
}

// TestRun checks that Run names each result, drops the fix of an OK one, and is not
// OK exactly when a check failed.
func TestRun(t *testing.T) {
	ret := func(r Result) func(*Facts) Result { return func(*Facts) Result { return r } }
	tests := []struct {
		name   string
		checks []Check
		want   Report
	}{
		{"empty", nil, Report{Checks: []Result{}, OK: true}},
		{
			"warn only",
			[]Check{{"a", ret(Result{Status: OK, Finding: "fine", Fix: "dropped"})}, {"b", ret(Result{Status: Warn, Finding: "meh", Fix: "do x"})}},
			Report{Checks: []Result{{Name: "a", Status: OK, Finding: "fine"}, {Name: "b", Status: Warn, Finding: "meh", Fix: "do x"}}, OK: true},
		},
		{
			"a failure",
			[]Check{{"a", ret(Result{Name: "ignored", Status: Fail, Finding: "bad", Fix: "do y"})}},
			Report{Checks: []Result{{Name: "a", Status: Fail, Finding: "bad", Fix: "do y"}}, OK: false},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, Run(&Facts{}, tt.checks)); diff != "" {
				t.Errorf("Run() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReportText(t *testing.T) {
	r := Report{Checks: []Result{
		{Name: "adapters", Status: OK, Finding: "T6 T62100-CR at 0000:81:00, 2 ports"},
		{Name: "vf-binding", Status: Warn, Finding: "1 of 4 VFs unbound: 0000:81:01.4", Fix: "echo 0000:81:01.4 > /sys/bus/pci/drivers/cxgb4vf/bind"},
		{Name: "swap", Status: Fail, Finding: "swap is on: /swap.img", Fix: "swapoff -a"},
	}}
	var b bytes.Buffer
	must(t, r.WriteText(&b))
	want := `OK    adapters: T6 T62100-CR at 0000:81:00, 2 ports
WARN  vf-binding: 1 of 4 VFs unbound: 0000:81:01.4
      fix: echo 0000:81:01.4 > /sys/bus/pci/drivers/cxgb4vf/bind
FAIL  swap: swap is on: /swap.img
      fix: swapoff -a
3 checks: 1 OK, 1 WARN, 1 FAIL
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("WriteText() mismatch (-want +got):\n%s", diff)
	}
}

func TestReportJSON(t *testing.T) {
	fx := newFixture(t)
	must(t, os.Remove(filepath.Join(fx.cfg.CNIBinDir, PluginName)))
	rep := Doctor(fx.cfg)
	b, err := json.Marshal(rep)
	must(t, err)

	// The documented shape: {"checks":[{"name","status","finding","fix"}],"ok":bool}.
	var raw struct {
		Checks []map[string]any `json:"checks"`
		OK     *bool            `json:"ok"`
	}
	must(t, json.Unmarshal(b, &raw))
	if raw.OK == nil || *raw.OK {
		t.Errorf("ok = %v, want false: %s", raw.OK, b)
	}
	if len(raw.Checks) != len(Checks()) {
		t.Fatalf("%d checks in JSON, want %d", len(raw.Checks), len(Checks()))
	}
	for _, c := range raw.Checks {
		var keys []string
		for k, v := range c {
			keys = append(keys, k)
			if _, ok := v.(string); !ok {
				t.Errorf("check %v: %s is %T, want a string", c["name"], k, v)
			}
		}
		slices.Sort(keys)
		if diff := cmp.Diff([]string{"finding", "fix", "name", "status"}, keys); diff != "" {
			t.Errorf("check keys mismatch (-want +got):\n%s", diff)
		}
	}
	if s := raw.Checks[10]["status"]; raw.Checks[10]["name"] != CheckCNIBinary || s != "FAIL" {
		t.Errorf("check 10 = %v, want cni-binary FAIL", raw.Checks[10])
	}

	var back Report
	must(t, json.Unmarshal(b, &back))
	if diff := cmp.Diff(rep, back); diff != "" {
		t.Errorf("JSON round trip mismatch (-want +got):\n%s", diff)
	}
	var s Status
	if err := s.UnmarshalText([]byte("ok")); err == nil {
		t.Error(`UnmarshalText("ok") succeeded; statuses are upper case`)
	}
	if _, err := Status(7).MarshalText(); err == nil {
		t.Error("MarshalText(7) succeeded")
	}
}
