package e2e

import (
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"

	"github.com/chelsio-k8s/chelsio-sriov/internal/roottest"
)

// TestPrivilegedCNISeedTwoWorkers is the reference flow: the seed's NAD (type
// chelsio-sriov) on a node whose VFs have MTU 9000; one pod per worker on the two
// ends of one cable; jumbo pings without fragmentation and a TCP transfer; CHECK;
// DEL gives both VFs back as they were and frees both leases.
//
// It runs with the seed's cniVersion 0.3.1 verbatim (which has no CHECK) and again
// at 1.1.0.
func TestPrivilegedCNISeedTwoWorkers(t *testing.T) {
	roottest.Require(t)
	for _, v := range []string{"0.3.1", "1.1.0"} {
		t.Run("cniVersion="+v, func(t *testing.T) { testSeedTwoWorkers(t, v) })
	}
}

func testSeedTwoWorkers(t *testing.T, cniVersion string) {
	node := upNode(t, "--vfs", "2", "--mtu", "9000")
	e := newCNIEnv(t, node)
	const addr = "0000:81:01.0"
	orig := map[int]hostLink{}
	for w := 1; w <= 2; w++ {
		hl, ok := e.workerLink(w, addr)
		if !ok {
			t.Fatalf("worker %d: VF %s has no netdev", w, addr)
		}
		orig[w] = hl
	}
	var over map[string]any
	if cniVersion != "0.3.1" {
		over = map[string]any{"cniVersion": cniVersion}
	}
	confs := map[int][]byte{1: e.conf(1, addr, over), 2: e.conf(2, addr, over)}
	pods := map[int]ns.NetNS{1: newPod(t), 2: newPod(t)}
	ips := map[int]net.IP{}
	for w := 1; w <= 2; w++ {
		r, err := e.add(w, "pod"+string(rune('0'+w)), pods[w], confs[w])
		if err != nil {
			t.Fatalf("worker %d: ADD: %v", w, err)
		}
		res, err := current.NewResultFromResult(r)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Interfaces) != 1 || res.Interfaces[0].Name != "net1" || res.Interfaces[0].Sandbox != pods[w].Path() || res.Interfaces[0].Mac == "" {
			t.Fatalf("worker %d: result interfaces %v", w, res.Interfaces)
		}
		if len(res.IPs) != 1 || !res.IPs[0].Address.IP.To4().Equal(res.IPs[0].Address.IP) || res.IPs[0].Address.IP.To4()[2] != 100 {
			t.Fatalf("worker %d: result IPs %v, want one address in 198.51.100.0/24", w, res.IPs)
		}
		ips[w] = res.IPs[0].Address.IP
		l, addrs, err := podLink(t, pods[w], "net1")
		if err != nil {
			t.Fatalf("worker %d: net1 in the pod: %v", w, err)
		}
		if l.Attrs().MTU != 9000 {
			t.Errorf("worker %d: net1 MTU %d, want the node's 9000", w, l.Attrs().MTU)
		}
		if len(addrs) != 1 || !addrs[0].IP.Equal(ips[w]) {
			t.Errorf("worker %d: net1 addresses %v, want %s", w, addrs, ips[w])
		}
		if _, ok := e.workerLink(w, addr); ok {
			t.Errorf("worker %d: the VF netdev is still in the worker after ADD", w)
		}
	}

	// Jumbo frames cross the cable unfragmented, both ways.
	for _, dir := range [][2]int{{1, 2}, {2, 1}} {
		from, to := dir[0], dir[1]
		err := pods[from].Do(func(ns.NetNS) error { return pingDF(ips[to], 8972, 3*time.Second) })
		if err != nil {
			t.Errorf("ping -M do -s 8972 from pod %d to %s: %v", from, ips[to], err)
		}
	}
	// And a TCP transfer.
	payload := bytes.Repeat([]byte("chelsio-"), 4<<20/8)
	ln := listenIn(t, pods[2], net.JoinHostPort(ips[2].String(), "0"))
	got := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		defer c.Close()
		n, _ := io.Copy(io.Discard, c)
		got <- n
	}()
	if err := pods[1].Do(func(ns.NetNS) error {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
		if err != nil {
			return err
		}
		_, err = c.Write(payload)
		if cerr := c.Close(); err == nil {
			err = cerr
		}
		return err
	}); err != nil {
		t.Fatalf("TCP transfer: %v", err)
	}
	select {
	case n := <-got:
		if n != int64(len(payload)) {
			t.Fatalf("TCP transfer: received %d bytes, sent %d", n, len(payload))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("TCP transfer: nothing received")
	}

	for w := 1; w <= 2 && cniVersion != "0.3.1"; w++ {
		if err := e.check(w, "pod"+string(rune('0'+w)), pods[w], confs[w]); err != nil {
			t.Errorf("worker %d: CHECK: %v", w, err)
		}
	}
	if n := len(e.leases()); n != 2 {
		t.Errorf("host-local holds %d leases, want 2", n)
	}
	for w := 1; w <= 2; w++ {
		if err := e.del(w, "pod"+string(rune('0'+w)), pods[w], confs[w]); err != nil {
			t.Fatalf("worker %d: DEL: %v", w, err)
		}
		hl := e.waitWorkerLink(w, addr)
		if diff := cmp.Diff(orig[w], hl); diff != "" {
			t.Errorf("worker %d: VF after DEL mismatch (-before ADD +after DEL):\n%s", w, diff)
		}
	}
	if l := e.leases(); len(l) != 0 {
		t.Errorf("leases left after DEL: %v", l)
	}
	for w := 1; w <= 2; w++ {
		if left, _ := os.ReadDir(filepath.Join(e.dataDirs[w], "attachments")); len(left) != 0 {
			t.Errorf("worker %d: state files left after DEL: %v", w, left)
		}
	}
}

// TestPrivilegedCNIMTUMACCapabilities sets mtu 9000 on a 1500 node, a per-pod
// MAC through runtimeConfig (capability mac) and a requested IP (capability ips,
// which host-local honours), takes the VF from
// runtimeConfig.deviceID (capability deviceID), at cniVersion 1.1.0 (MTU and pciID
// in the result); DEL puts back MTU 1500 and the original MAC.
func TestPrivilegedCNIMTUMACCapabilities(t *testing.T) {
	roottest.Require(t)
	node := upNode(t, "--vfs", "2")
	e := newCNIEnv(t, node)
	const addr = "0000:81:01.4"
	orig, ok := e.workerLink(1, addr)
	if !ok {
		t.Fatal("no VF netdev")
	}
	conf := e.conf(1, "", map[string]any{"cniVersion": "1.1.0", "mtu": 9000, "capabilities": map[string]bool{"mac": true, "deviceID": true, "ips": true}})
	pod := newPod(t)
	rt := e.rt("podmtu", pod)
	const mac = "0a:58:c6:33:64:0a"
	const ip = "198.51.100.77/24"
	rt.CapabilityArgs = map[string]any{"mac": mac, "deviceID": addr, "ips": []string{ip}}
	cfg := e.plugin(conf)
	r, err := e.cni(1).AddNetwork(ctx30(t), cfg, rt)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	res, err := current.NewResultFromResult(r)
	if err != nil {
		t.Fatal(err)
	}
	want := &current.Interface{Name: "net1", Mac: mac, Mtu: 9000, Sandbox: pod.Path(), PciID: addr}
	if diff := cmp.Diff(want, res.Interfaces[0]); diff != "" {
		t.Errorf("result interface mismatch (-want +got):\n%s", diff)
	}
	if len(res.IPs) != 1 || res.IPs[0].Address.String() != ip {
		t.Errorf("result IPs %v, want the requested %s", res.IPs, ip)
	}
	l, addrs, err := podLink(t, pod, "net1")
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) != 1 || addrs[0].IPNet.String() != ip {
		t.Errorf("net1 addresses %v, want %s", addrs, ip)
	}
	if l.Attrs().MTU != 9000 || l.Attrs().HardwareAddr.String() != mac {
		t.Errorf("net1: MTU %d MAC %s, want 9000 %s", l.Attrs().MTU, l.Attrs().HardwareAddr, mac)
	}
	if err := e.cni(1).CheckNetwork(ctx30(t), cfg, rt); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	if err := e.cni(1).DelNetwork(ctx30(t), cfg, rt); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	got := e.waitWorkerLink(1, addr)
	if diff := cmp.Diff(orig, got); diff != "" {
		t.Errorf("VF after DEL mismatch (-before +after):\n%s", diff)
	}
}

// TestPrivilegedCNIDualStackRoutes gives the pod an IPv4 and an IPv6 address from
// two host-local ranges with gateways, a default route of each family through its
// range's gateway, and a route with a gateway of its own; IPv6 comes up enabled
// with keep_addr_on_down, and the IPv6 default route is in place only once
// duplicate address detection is over (which needs the far end of the cable up:
// a pod on worker 2 holds it).
func TestPrivilegedCNIDualStackRoutes(t *testing.T) {
	roottest.Require(t)
	node := upNode(t, "--vfs", "1")
	e := newCNIEnv(t, node)
	const addr = "0000:81:01.0"
	far := newPod(t)
	farConf := e.conf(2, addr, nil)
	if _, err := e.add(2, "podfar", far, farConf); err != nil {
		t.Fatalf("ADD on worker 2: %v", err)
	}
	t.Cleanup(func() {
		if err := e.del(2, "podfar", far, farConf); err != nil {
			t.Errorf("DEL on worker 2: %v", err)
		}
	})
	ipam := map[string]any{
		"type": "host-local", "dataDir": e.ipamDir,
		"ranges": [][]map[string]string{
			{{"subnet": "198.51.100.0/24", "gateway": "198.51.100.1"}},
			{{"subnet": "2001:db8:c0::/64", "gateway": "2001:db8:c0::1"}},
		},
		"routes": []map[string]string{{"dst": "0.0.0.0/0"}, {"dst": "::/0"}, {"dst": "203.0.113.0/24", "gw": "198.51.100.254"}},
	}
	conf := e.conf(1, addr, map[string]any{"cniVersion": "1.0.0", "ipam": ipam})
	pod := newPod(t)
	r, err := e.add(1, "poddual", pod, conf)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	res, err := current.NewResultFromResult(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.IPs) != 2 {
		t.Fatalf("result IPs %v, want one IPv4 and one IPv6", res.IPs)
	}
	var got []string
	var disabled, keep string
	err = pod.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName("net1")
		if err != nil {
			return err
		}
		addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return err
		}
		for _, a := range addrs {
			if a.IP.IsGlobalUnicast() {
				got = append(got, "addr "+a.IPNet.String())
			}
		}
		routes, err := netlink.RouteList(l, netlink.FAMILY_ALL)
		if err != nil {
			return err
		}
		for _, rt := range routes {
			if rt.Gw != nil {
				got = append(got, "route "+rt.Dst.String()+" via "+rt.Gw.String())
			}
		}
		b, _ := os.ReadFile("/proc/sys/net/ipv6/conf/net1/disable_ipv6")
		disabled = strings.TrimSpace(string(b))
		b, _ = os.ReadFile("/proc/sys/net/ipv6/conf/net1/keep_addr_on_down")
		keep = strings.TrimSpace(string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	want := []string{
		"addr " + res.IPs[0].Address.String(), "addr " + res.IPs[1].Address.String(),
		"route 0.0.0.0/0 via 198.51.100.1", "route 203.0.113.0/24 via 198.51.100.254", "route ::/0 via 2001:db8:c0::1",
	}
	sort.Strings(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pod's net1 mismatch (-want +got):\n%s", diff)
	}
	if disabled != "0" || keep != "1" {
		t.Errorf("net1 sysctls: disable_ipv6 %q keep_addr_on_down %q, want 0 and 1", disabled, keep)
	}
	if err := e.check(1, "poddual", pod, conf); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	if err := e.del(1, "poddual", pod, conf); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(e.ipamDir, "sriov-network"))
	var left []string
	for _, en := range entries {
		if n := en.Name(); n != "lock" && !strings.HasPrefix(n, "last_reserved_ip") {
			left = append(left, n)
		}
	}
	if len(left) != 1 || strings.Contains(left[0], ":") {
		t.Errorf("leases after DEL: %v, want only worker 2's IPv4 one", left)
	}
}
