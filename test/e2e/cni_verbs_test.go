package e2e

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/types/create"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"

	"github.com/chelsio-k8s/chelsio-sriov/internal/roottest"
)

const verbsVF = "0000:81:01.4"

// TestPrivilegedCNICheck: CHECK (cniVersion 1.0.0, through libcni with the cached
// result as prevResult) passes after ADD and fails, with a message that says what
// is wrong, once the pod's interface no longer matches the result. Each case then
// DELs and the VF comes back as it was.
func TestPrivilegedCNICheck(t *testing.T) {
	roottest.Require(t)
	const mac = "0a:58:c6:33:64:61"
	tests := []struct {
		name    string
		change  func(t *testing.T, pod ns.NetNS)
		mention []string // "" change: CHECK must pass
		// settle waits, before DEL, for what the change sets off.
		settle func(t *testing.T, e *cniEnv)
	}{
		{name: "unchanged"},
		{
			name: "MTU changed",
			change: func(t *testing.T, pod ns.NetNS) {
				setPodLink(t, pod, "net1", func(l netlink.Link) error { return netlink.LinkSetMTU(l, 1400) })
			},
			mention: []string{"net1", "MTU 1400", "9000"},
		},
		{
			name: "address deleted",
			change: func(t *testing.T, pod ns.NetNS) {
				setPodLink(t, pod, "net1", func(l netlink.Link) error {
					addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
					if err != nil {
						return err
					}
					for _, a := range addrs {
						if err := netlink.AddrDel(l, &a); err != nil {
							return err
						}
					}
					return nil
				})
			},
			mention: []string{"net1", "lacks address", "198.51.100."},
		},
		{
			// A real VF netdev cannot be deleted; the emulated one, a veth, can:
			// its pair dies and the emulator brings both ends back to their workers.
			name: "interface deleted",
			change: func(t *testing.T, pod ns.NetNS) {
				setPodLink(t, pod, "net1", netlink.LinkDel)
			},
			mention: []string{"net1", "missing"},
			// As when a VF's driver is rebound: the netdev reappears in the host.
			settle: func(t *testing.T, e *cniEnv) { e.home(t, 1, verbsVF) },
		},
		{
			// Something in the pod renamed it: CHECK misses it, and DEL must still
			// find the VF in the pod.
			name: "interface renamed",
			change: func(t *testing.T, pod ns.NetNS) {
				setPodLink(t, pod, "net1", func(l netlink.Link) error {
					if err := netlink.LinkSetDown(l); err != nil {
						return err
					}
					return netlink.LinkSetName(l, "eth7")
				})
			},
			mention: []string{"net1", "missing"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			node := upNode(t, "--vfs", "2")
			e := newCNIEnv(t, node)
			before, beforePF := e.home(t, 1, verbsVF), e.pfConfig(t, 1, verbsVF)
			conf := e.conf(1, verbsVF, map[string]any{"cniVersion": "1.0.0", "mtu": 9000, "mac": mac})
			pod := newPod(t)
			if _, err := e.add(1, "pod-check", pod, conf); err != nil {
				t.Fatalf("ADD: %v", err)
			}
			if err := e.check(1, "pod-check", pod, conf); err != nil {
				t.Fatalf("CHECK right after ADD: %v", err)
			}
			if tt.change != nil {
				tt.change(t, pod)
				err := e.check(1, "pod-check", pod, conf)
				if err == nil {
					t.Fatal("CHECK passed")
				}
				var te *types.Error
				if !errors.As(err, &te) {
					t.Fatalf("CHECK error %v (%T) is not a *types.Error", err, err)
				}
				for _, m := range tt.mention {
					if !strings.Contains(te.Msg, m) {
						t.Errorf("CHECK message %q does not name %q", te.Msg, m)
					}
				}
				if strings.ContainsAny(te.Msg, "\r\n") {
					t.Errorf("CHECK message spans lines: %q", te.Msg)
				}
				t.Logf("CHECK: code %d: %s", te.Code, te.Msg)
			}
			if tt.settle != nil {
				tt.settle(t, e)
			}
			delReleased(t, e, "pod-check", pod, conf, verbsVF, before, beforePF)
		})
	}
}

// TestPrivilegedCNIStatus: STATUS through libcni (cniVersion 1.1.0) is ready with a
// usable dataDir, and code 50 when the dataDir cannot be created (a path under a
// regular file).
func TestPrivilegedCNIStatus(t *testing.T) {
	roottest.Require(t)
	node := upNode(t, "--vfs", "2")
	e := newCNIEnv(t, node)

	t.Run("ready", func(t *testing.T) {
		list := e.confList(t, "1.1.0", e.conf(1, "", nil))
		if err := e.cni(1).GetStatusNetworkList(ctx30(t), list); err != nil {
			t.Fatalf("STATUS: %v", err)
		}
	})
	t.Run("dataDir not writable", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		dataDir := filepath.Join(file, "state")
		list := e.confList(t, "1.1.0", e.conf(1, "", map[string]any{"dataDir": dataDir}))
		err := e.cni(1).GetStatusNetworkList(ctx30(t), list)
		if err == nil {
			t.Fatal("STATUS ready with a dataDir under a regular file")
		}
		var te *types.Error
		if !errors.As(err, &te) {
			t.Fatalf("STATUS error %v (%T) is not a *types.Error", err, err)
		}
		if te.Code != 50 {
			t.Errorf("STATUS code %d, want 50 (%v)", te.Code, te)
		}
		if !strings.Contains(te.Msg, dataDir) {
			t.Errorf("STATUS message %q does not name the dataDir %s", te.Msg, dataDir)
		}
	})
}

// TestPrivilegedCNIGC: GC through libcni (cniVersion 1.1.0) with two attachments
// and only one in cni.dev/valid-attachments releases the other (VF back as it was,
// lease freed, state gone) and leaves the valid one alone. Once with a runtime
// whose result cache lost both attachments (only the plugin's GC can find the stale
// one), once with the cache (libcni DELs the stale one itself, then GCs).
func TestPrivilegedCNIGC(t *testing.T) {
	roottest.Require(t)
	const staleVF, validVF = "0000:81:01.0", "0000:81:01.4"
	for _, withCache := range []bool{false, true} {
		name := "runtime cache lost"
		if withCache {
			name = "runtime cache kept"
		}
		t.Run(name, func(t *testing.T) {
			node := upNode(t, "--vfs", "2")
			e := newCNIEnv(t, node)
			before, beforePF := e.home(t, 1, staleVF), e.pfConfig(t, 1, staleVF)
			confStale := e.conf(1, staleVF, map[string]any{"cniVersion": "1.1.0", "mtu": 9000, "mac": "0a:58:c6:33:64:71", "vlan": 100})
			confValid := e.conf(1, validVF, map[string]any{"cniVersion": "1.1.0", "mtu": 9000, "mac": "0a:58:c6:33:64:72", "vlan": 200})
			podStale, podValid := newPod(t), newPod(t)
			addOK(t, e, "pod-stale", podStale, confStale, 9000, "0a:58:c6:33:64:71")
			pv := addOK(t, e, "pod-valid", podValid, confValid, 9000, "0a:58:c6:33:64:72")
			validPF := e.pfConfig(t, 1, validVF)
			validState := readFile(t, filepath.Join(e.dataDirs[1], "attachments", "pod-valid_net1.json"))

			gc := e.cni(1)
			if !withCache {
				gc = libcni.NewCNIConfigWithCacheDir([]string{e.wrapDirs[1], binDir}, t.TempDir(), nil)
			}
			list := e.confList(t, "1.1.0", e.conf(1, "", nil))
			valid := []types.GCAttachment{{ContainerID: "pod-valid", IfName: "net1"}}
			if err := gc.GCNetworkList(ctx30(t), list, &libcni.GCArgs{ValidAttachments: valid}); err != nil {
				t.Fatalf("GC: %v", err)
			}

			// The stale attachment is gone.
			e.waitHome(t, 1, staleVF, before, false)
			if diff := cmp.Diff(beforePF, e.pfConfig(t, 1, staleVF)); diff != "" {
				t.Errorf("stale VF's PF-side settings mismatch (-before ADD +after GC):\n%s", diff)
			}
			if _, ok := podIfaceOf(t, podStale, "net1"); ok {
				t.Error("net1 still in the stale pod")
			}
			if diff := cmp.Diff(map[string]string{}, withoutOwner(e.leaseOwners(t), "pod-valid")); diff != "" {
				t.Errorf("leases other than the valid attachment's (-want +got):\n%s", diff)
			}
			if _, err := os.Stat(filepath.Join(e.dataDirs[1], "attachments", "pod-stale_net1.json")); !os.IsNotExist(err) {
				t.Errorf("stale attachment's state file: %v", err)
			}
			if _, err := os.Stat(filepath.Join(e.dataDirs[1], "vfs", staleVF+".json")); !os.IsNotExist(err) {
				t.Errorf("stale VF's owner file: %v", err)
			}

			// The valid one is untouched.
			got, ok := podIfaceOf(t, podValid, "net1")
			if !ok {
				t.Fatal("GC took net1 out of the valid pod")
			}
			if diff := cmp.Diff(pv, got); diff != "" {
				t.Errorf("valid net1 changed (-before +after GC):\n%s", diff)
			}
			if diff := cmp.Diff(validPF, e.pfConfig(t, 1, validVF)); diff != "" {
				t.Errorf("valid VF's PF-side settings changed (-before +after GC):\n%s", diff)
			}
			if owners := e.leaseOwners(t); !slices.Contains(mapValues(owners), "pod-valid") {
				t.Errorf("the valid attachment lost its lease: %v", owners)
			}
			if diff := cmp.Diff(validState, readFile(t, filepath.Join(e.dataDirs[1], "attachments", "pod-valid_net1.json"))); diff != "" {
				t.Errorf("valid attachment's state changed (-before +after GC):\n%s", diff)
			}
			if err := e.check(1, "pod-valid", podValid, confValid); err != nil {
				t.Errorf("CHECK of the valid attachment after GC: %v", err)
			}
		})
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func withoutOwner(m map[string]string, owner string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if v != owner {
			out[k] = v
		}
	}
	return out
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// TestPrivilegedCNIVersion: VERSION through libcni lists 0.3.0 to 1.1.0.
func TestPrivilegedCNIVersion(t *testing.T) {
	roottest.Require(t)
	node := upNode(t, "--vfs", "1", "--workers", "1")
	e := newCNIEnv(t, node)
	info, err := e.cni(1).GetVersionInfo(ctx30(t), "chelsio-sriov")
	if err != nil {
		t.Fatalf("VERSION: %v", err)
	}
	got := info.SupportedVersions()
	slices.Sort(got)
	want := []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("supported versions mismatch (-want +got):\n%s", diff)
	}
}

// TestPrivilegedCNIResultVersions: ADD's stdout at cniVersion 0.3.1, 0.4.0, 1.0.0 and
// 1.1.0 parses as a result of that version, and carries the interface's mtu and
// pciID (result fields of 1.1.0) only at 1.1.0.
func TestPrivilegedCNIResultVersions(t *testing.T) {
	roottest.Require(t)
	const mac = "0a:58:c6:33:64:81"
	for _, v := range []string{"0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run(v, func(t *testing.T) {
			node := upNode(t, "--vfs", "2")
			e := newCNIEnv(t, node)
			before, beforePF := e.home(t, 1, verbsVF), e.pfConfig(t, 1, verbsVF)
			conf := e.conf(1, verbsVF, map[string]any{"cniVersion": v, "mtu": 9000, "mac": mac})
			pod := newPod(t)
			out, err := e.rawExec(t, 1, "ADD", "pod-ver", "net1", pod, conf)
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			r, err := create.CreateFromBytes(out)
			if err != nil {
				t.Fatalf("parse the result: %v\n%s", err, out)
			}
			if r.Version() != v {
				t.Errorf("result cniVersion %q, want %q", r.Version(), v)
			}
			res, err := current.NewResultFromResult(r)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Interfaces) != 1 || res.Interfaces[0].Name != "net1" || res.Interfaces[0].Mac != mac || res.Interfaces[0].Sandbox != pod.Path() {
				t.Errorf("result interfaces %+v", res.Interfaces)
			}
			if len(res.IPs) != 1 {
				t.Errorf("result IPs %v, want one", res.IPs)
			}
			var raw struct {
				Interfaces []map[string]any `json:"interfaces"`
			}
			if err := json.Unmarshal(out, &raw); err != nil || len(raw.Interfaces) != 1 {
				t.Fatalf("result %s: %v", out, err)
			}
			for _, key := range []string{"mtu", "pciID"} {
				_, has := raw.Interfaces[0][key]
				if want := v == "1.1.0"; has != want {
					t.Errorf("result interface has %q = %v, want %v (a 1.1.0 field):\n%s", key, has, want, out)
				}
			}
			delReleased(t, e, "pod-ver", pod, conf, verbsVF, before, beforePF)
		})
	}
}

// TestPrivilegedCNIGCOtherNetwork: two networks of chelsio-sriov share the state
// directory (the default dataDir is one per node). GC of one network, whose valid
// list cannot name the other's attachments, leaves those alone.
func TestPrivilegedCNIGCOtherNetwork(t *testing.T) {
	roottest.Require(t)
	const vfA, vfB = "0000:81:01.0", "0000:81:01.4"
	node := upNode(t, "--vfs", "2")
	e := newCNIEnv(t, node)
	beforeA := e.home(t, 1, vfA)
	confA := e.conf(1, vfA, map[string]any{"cniVersion": "1.1.0"})
	confB := e.conf(1, vfB, map[string]any{"cniVersion": "1.1.0", "name": "other-network"})
	podA, podB := newPod(t), newPod(t)
	if _, err := e.add(1, "pod-a", podA, confA); err != nil {
		t.Fatalf("ADD on network A: %v", err)
	}
	if _, err := e.add(1, "pod-b", podB, confB); err != nil {
		t.Fatalf("ADD on network B: %v", err)
	}
	t.Cleanup(func() {
		if err := e.del(1, "pod-b", podB, confB); err != nil {
			t.Errorf("DEL on network B: %v", err)
		}
	})
	pb, ok := podIfaceOf(t, podB, "net1")
	if !ok {
		t.Fatal("pod-b has no net1")
	}
	stateB := readFile(t, filepath.Join(e.dataDirs[1], "attachments", "pod-b_net1.json"))

	list := e.confList(t, "1.1.0", e.conf(1, "", nil))
	if err := e.cni(1).GCNetworkList(ctx30(t), list, &libcni.GCArgs{}); err != nil {
		t.Fatalf("GC of network A: %v", err)
	}
	e.waitHome(t, 1, vfA, beforeA, false)
	if _, ok := podIfaceOf(t, podA, "net1"); ok {
		t.Error("network A's stale attachment is still in its pod")
	}
	got, ok := podIfaceOf(t, podB, "net1")
	if !ok {
		t.Fatal("GC of network A took network B's VF out of its pod")
	}
	if diff := cmp.Diff(pb, got); diff != "" {
		t.Errorf("network B's net1 changed (-before +after GC):\n%s", diff)
	}
	if diff := cmp.Diff(stateB, readFile(t, filepath.Join(e.dataDirs[1], "attachments", "pod-b_net1.json"))); diff != "" {
		t.Errorf("network B's state changed (-before +after GC):\n%s", diff)
	}
}
