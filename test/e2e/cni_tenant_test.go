package e2e

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"

	"github.com/chelsio-k8s/chelsio-sriov/internal/roottest"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/cni"
)

// What a tenant writes (a NetworkAttachmentDefinition's config, the pod's network
// annotation, the links of a pod with NET_ADMIN) must never make the plugin act
// outside that pod's VF. Each test plays one attack on the emulated node and checks
// that the VF and the node are as they were.

const tenantVF = "0000:81:01.0"

// dotted is a PCI address as an alternative name carries it ('.' for ':').
func dotted(addr string) string { return strings.ReplaceAll(addr, ":", ".") }

// verbs runs ADD, CHECK and DEL of one attachment on worker 1, either through
// libcni and the real binary or in this process with a kernel of the test's
// choosing.
type verbs struct {
	name  string
	add   func(e *cniEnv, id string, pod ns.NetNS, conf []byte) error
	check func(e *cniEnv, id string, pod ns.NetNS, conf []byte) error
	del   func(e *cniEnv, id string, pod ns.NetNS, conf []byte) error
}

// kernels: the real binary on this kernel (a veth reports no parent device, so the
// plugin knows the VF by the ifindex ADD recorded and its alternative name); the
// plugin in process on a kernel that reports no parent device; and on one that
// does, played by the alias the test gives every VF netdev before the attack.
func kernels(t *testing.T) []verbs {
	binary := verbs{
		name: "binary",
		add: func(e *cniEnv, id string, pod ns.NetNS, conf []byte) error {
			_, err := e.add(1, id, pod, conf)
			return err
		},
		check: func(e *cniEnv, id string, pod ns.NetNS, conf []byte) error { return e.check(1, id, pod, conf) },
		del:   func(e *cniEnv, id string, pod ns.NetNS, conf []byte) error { return e.del(1, id, pod, conf) },
	}
	inProcess := func(name string, dev cni.KernelDevice) verbs {
		plugin := func(e *cniEnv) *cni.Plugin {
			p, _ := e.inProcess(1)
			p.KernelDevice = dev
			return p
		}
		return verbs{
			name: name,
			add: func(e *cniEnv, id string, pod ns.NetNS, conf []byte) error {
				_, err := plugin(e).Add(e.args(id, pod, conf))
				return err
			},
			check: func(e *cniEnv, id string, pod ns.NetNS, conf []byte) error {
				return plugin(e).Check(e.args(id, pod, prevResultConf(t, conf)))
			},
			del: func(e *cniEnv, id string, pod ns.NetNS, conf []byte) error {
				return plugin(e).Del(e.args(id, pod, conf))
			},
		}
	}
	return []verbs{
		binary,
		inProcess("kernel without parent device", func(ns.NetNS, netlink.Link) string { return "" }),
		inProcess("kernel with parent device", aliasDevice),
	}
}

// aliasDevice plays a kernel that reports each VF netdev's parent device: the test
// sets the alias "vf <pci address>" on the VFs, which the scripted pod never does.
func aliasDevice(_ ns.NetNS, l netlink.Link) string {
	if a, ok := strings.CutPrefix(l.Attrs().Alias, "vf "); ok {
		return a
	}
	return ""
}

// prevResultConf adds the prevResult that CHECK needs, taken from the pod's net1
// as ADD left it, to an in-process CHECK's config.
func prevResultConf(t *testing.T, conf []byte) []byte {
	t.Helper()
	return []byte(strings.Replace(string(conf), "{", `{"prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"net1"}]},`, 1))
}

// markVFs gives every VF netdev of worker 1 the alias aliasDevice reads.
func markVFs(t *testing.T, e *cniEnv) {
	t.Helper()
	wn, err := ns.GetNS(filepath.Join("/run/netns", e.node.netns(1)))
	if err != nil {
		t.Fatal(err)
	}
	defer wn.Close()
	for _, l := range e.node.list(1) {
		if l.Netdev == "" {
			continue
		}
		setPodLink(t, wn, l.Netdev, func(link netlink.Link) error { return netlink.LinkSetAlias(link, "vf "+l.PCIAddress) })
	}
}

// TestPrivilegedCNIPodPlantedVF: a pod with NET_ADMIN renames its VF and creates a
// veth under the VF's pod name, with an alternative name of the emulator's form for
// the VF's address. CHECK must see through it, and DEL must bring the real VF home
// and leave the pod's veth in the pod: the next pod of that VF gets the VF, not a
// link whose peer the first pod holds.
func TestPrivilegedCNIPodPlantedVF(t *testing.T) {
	roottest.Require(t)
	node := upNode(t, "--vfs", "2")
	for _, k := range kernels(t) {
		t.Run(k.name, func(t *testing.T) {
			e := newCNIEnv(t, node)
			markVFs(t, e)
			before := e.home(t, 1, tenantVF)
			conf := e.conf(1, tenantVF, map[string]any{"cniVersion": "1.0.0"})
			pod := newPod(t)
			if err := k.add(e, "pod-evil", pod, conf); err != nil {
				t.Fatalf("ADD: %v", err)
			}
			plantVeth(t, pod, tenantVF)
			if err := k.check(e, "pod-evil", pod, conf); err == nil || !strings.Contains(err.Error(), "not VF "+tenantVF) {
				t.Errorf("CHECK with a planted net1: %v, want an error saying net1 is not VF %s", err, tenantVF)
			}
			if err := k.del(e, "pod-evil", pod, conf); err != nil {
				t.Fatalf("DEL: %v", err)
			}
			e.waitHome(t, 1, tenantVF, before, false)
			if kind := linkKind(t, pod, "net1"); kind != "veth" {
				t.Errorf("the pod's own veth net1 is gone from the pod (now %q)", kind)
			}
			if kind := linkKind(t, pod, "keep"); kind != "" {
				t.Errorf("the VF is still in the pod as keep (%s)", kind)
			}
			// What the worker has under the VF's name is the VF, not the pod's veth.
			wn, err := ns.GetNS(filepath.Join("/run/netns", e.node.netns(1)))
			if err != nil {
				t.Fatal(err)
			}
			defer wn.Close()
			for _, alt := range altNames(t, wn, before.Name) {
				if strings.HasPrefix(alt, "x-w9.") {
					t.Fatalf("worker 1's %s is the pod's veth (altname %s)", before.Name, alt)
				}
			}
			next := newPod(t)
			if err := k.add(e, "pod-next", next, conf); err != nil {
				t.Fatalf("ADD of the next pod: %v", err)
			}
			if err := k.del(e, "pod-next", next, conf); err != nil {
				t.Fatalf("DEL of the next pod: %v", err)
			}
			e.waitHome(t, 1, tenantVF, before, false)
			assertFreed(t, e, nil)
		})
	}
}

// plantVeth plays the pod: its VF net1 renamed keep, a veth pair created, one end
// named net1 with the emulator's alternative-name form for the VF's address.
func plantVeth(t *testing.T, pod ns.NetNS, addr string) {
	t.Helper()
	err := pod.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName("net1")
		if err != nil {
			return err
		}
		if err := netlink.LinkSetDown(l); err != nil {
			return err
		}
		if err := netlink.LinkSetName(l, "keep"); err != nil {
			return err
		}
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "net1"}, PeerName: "evilpeer"}
		if err := netlink.LinkAdd(v); err != nil {
			return err
		}
		fake, err := netlink.LinkByName("net1")
		if err != nil {
			return err
		}
		if err := netlink.LinkAddAltName(fake, "x-w9."+dotted(addr)); err != nil {
			return err
		}
		return netlink.LinkSetUp(fake)
	})
	if err != nil {
		t.Fatalf("plant a veth in the pod: %v", err)
	}
}

// linkKind returns the type of namespace n's link called name, "" when none is.
func linkKind(t *testing.T, n ns.NetNS, name string) string {
	t.Helper()
	kind := ""
	err := n.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(name)
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		if err != nil {
			return err
		}
		kind = l.Type()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return kind
}

// altNames returns the alternative names of namespace n's link called name.
func altNames(t *testing.T, n ns.NetNS, name string) []string {
	t.Helper()
	var alts []string
	err := n.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		alts = l.Attrs().AltNames
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return alts
}

// TestPrivilegedCNIRefusesHostNetns: CNI_NETNS naming the plugin's own namespace
// (the node's) is refused with code 8 before anything changes; DEL with it changes
// nothing of a VF that no pod holds.
func TestPrivilegedCNIRefusesHostNetns(t *testing.T) {
	roottest.Require(t)
	node := upNode(t, "--vfs", "2")
	e := newCNIEnv(t, node)
	before := e.homes(t, 1)
	conf := e.conf(1, tenantVF, map[string]any{"cniVersion": "1.0.0", "mtu": 9000, "vlan": 100})
	beforePF := e.pfConfig(t, 1, tenantVF)
	rt := e.rt("pod-host", nil)
	rt.NetNS = "/proc/self/ns/net" // the plugin's, which runs in worker 1's namespace
	_, err := e.cni(1).AddNetwork(ctx30(t), e.plugin(conf), rt)
	checkRefusal(t, err, 8, []string{rt.NetNS, "node's own network namespace"})
	if diff := cmp.Diff(before, e.homes(t, 1)); diff != "" {
		t.Errorf("worker 1's VFs changed (-before +after):\n%s", diff)
	}
	if got := e.pfConfig(t, 1, tenantVF); got != beforePF {
		t.Errorf("PF-side settings %+v, want %+v", got, beforePF)
	}
	assertFreed(t, e, nil)
	// The CNI library's skeleton answers DEL with this namespace code 8 too, after
	// the plugin's DEL ran: what matters is that nothing changed.
	if err := e.cni(1).DelNetwork(ctx30(t), e.plugin(conf), rt); err != nil {
		checkRefusal(t, err, 8, []string{"netns"})
	}
	if diff := cmp.Diff(before, e.homes(t, 1)); diff != "" {
		t.Errorf("DEL changed worker 1's VFs (-before +after):\n%s", diff)
	}
}

// TestPrivilegedCNIReservedIfName: an interface name the kernel refuses in a pod
// (all, default) is refused with code 4 before the VF moves.
func TestPrivilegedCNIReservedIfName(t *testing.T) {
	roottest.Require(t)
	node := upNode(t, "--vfs", "2")
	e := newCNIEnv(t, node)
	before := e.homes(t, 1)
	conf := e.conf(1, tenantVF, map[string]any{"cniVersion": "1.0.0"})
	for _, name := range []string{"all", "default"} {
		t.Run(name, func(t *testing.T) {
			pod := newPod(t)
			rt := e.rt("pod-"+name, pod)
			rt.IfName = name
			_, err := e.cni(1).AddNetwork(ctx30(t), e.plugin(conf), rt)
			checkRefusal(t, err, 4, []string{"CNI_IFNAME", name})
			if diff := cmp.Diff(before, e.homes(t, 1)); diff != "" {
				t.Errorf("worker 1's VFs changed (-before +after):\n%s", diff)
			}
			assertFreed(t, e, nil)
			if k := linkKind(t, pod, before[tenantVF].Name); k != "" {
				t.Errorf("the VF is in the pod under its host name %s", before[tenantVF].Name)
			}
		})
	}
}

// TestPrivilegedCNIConfigSize: a config too large for the state DEL reads (2 MB of
// dns.search) is refused with code 7 before anything changes; one just within the
// limit is attached, and DEL restores the VF from its state (PF-side VLAN included).
func TestPrivilegedCNIConfigSize(t *testing.T) {
	roottest.Require(t)
	node := upNode(t, "--vfs", "2", "--mtu", "1500")
	e := newCNIEnv(t, node)
	before, beforePF := e.home(t, 1, tenantVF), e.pfConfig(t, 1, tenantVF)
	search := func(bytes int) []string {
		var s []string
		for n := 0; n < bytes; n += 64 {
			s = append(s, fmt.Sprintf("%056d.example", len(s)))
		}
		return s
	}
	over := map[string]any{"cniVersion": "1.0.0", "mtu": 9000, "vlan": 100, "mac": delMAC}

	t.Run("2 MB", func(t *testing.T) {
		over["dns"] = map[string]any{"search": search(2 << 20)}
		conf := e.conf(1, tenantVF, over)
		pod := newPod(t)
		_, err := e.add(1, "pod-big", pod, conf)
		checkRefusal(t, err, 7, []string{"network config", "bytes"})
		e.waitHome(t, 1, tenantVF, before, false)
		assertFreed(t, e, pod)
		if got := e.pfConfig(t, 1, tenantVF); got != beforePF {
			t.Errorf("PF-side settings %+v, want %+v", got, beforePF)
		}
	})
	t.Run("within the limit", func(t *testing.T) {
		// As many names as fit in the limit, less 4 KiB.
		names := search(cni.MaxNetConf)
		var conf []byte
		for n := len(names); ; n -= 16 {
			over["dns"] = map[string]any{"search": names[:n]}
			if conf = e.conf(1, tenantVF, over); len(conf) <= cni.MaxNetConf-4<<10 {
				break
			}
		}
		t.Logf("config of %d bytes", len(conf))
		pod := newPod(t)
		addOK(t, e, "pod-large", pod, conf, 9000, delMAC)
		delReleased(t, e, "pod-large", pod, conf, tenantVF, before, beforePF)
	})
}

// TestPrivilegedCNIIPAMRollback: an IPAM plugin that allocates and then fails (a
// result it cannot print, a crash) must not keep the lease: ADD's undo runs IPAM
// DEL. Once for an IPAM plugin that ADD runs after the move, once for host-local,
// which ADD runs while the VF moves.
func TestPrivilegedCNIIPAMRollback(t *testing.T) {
	roottest.Require(t)
	node := upNode(t, "--vfs", "2")
	e := newCNIEnv(t, node)
	before := e.home(t, 1, tenantVF)
	hostLocal := filepath.Join(binDir, "host-local")
	if _, err := os.Stat(hostLocal); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf("#!/bin/sh\nif [ \"$CNI_COMMAND\" = ADD ]; then\n  %s >/dev/null || exit 1\n  echo '{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"allocated, then failed\"}'\n  exit 1\nfi\nexec %s\n", hostLocal, hostLocal)
	for _, typ := range []string{"ipam-flaky", "host-local"} {
		t.Run(typ, func(t *testing.T) {
			// A directory before the real plugins in CNI_PATH, holding the flaky one.
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, typ), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			conf := e.conf(1, tenantVF, map[string]any{"cniVersion": "1.0.0"})
			conf = []byte(strings.Replace(string(conf), `"type":"host-local"`, `"type":"`+typ+`"`, 1))
			pod := newPod(t)
			pc := e.plugin(conf)
			c := e.cni(1)
			c.Path = append([]string{e.wrapDirs[1], dir}, c.Path[1:]...)
			_, err := c.AddNetwork(ctx30(t), pc, e.rt("pod-ipam", pod))
			var te *types.Error
			if !errors.As(err, &te) || !strings.Contains(te.Msg, "allocated, then failed") {
				t.Fatalf("ADD: %v, want the IPAM plugin's error", err)
			}
			e.waitHome(t, 1, tenantVF, before, false)
			assertFreed(t, e, pod)
		})
	}
}
