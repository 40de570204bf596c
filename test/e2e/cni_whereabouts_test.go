package e2e

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/google/go-cmp/cmp"

	"github.com/chelsio-k8s/chelsio-sriov/internal/kubeapi"
	"github.com/chelsio-k8s/chelsio-sriov/internal/roottest"
)

// TestPrivilegedCNIWhereabouts runs the shipped NAD, whose IPAM is whereabouts,
// on two workers that share nothing but the cluster's API (a stand-in): each has
// its own kubeconfig, flat file, log and NODENAME, as two nodes have. Pods on the
// two workers get different addresses (host-local, which keeps leases per node,
// gives both the first one); a second pod on worker 1 gets a third; DEL frees
// all three in the IPPool.
func TestPrivilegedCNIWhereabouts(t *testing.T) {
	roottest.Require(t)
	whereabouts(t)
	node := upNode(t, "--vfs", "2", "--mtu", "9000")
	e := newCNIEnv(t, node)
	api := kubeapi.New()
	t.Cleanup(api.Close)
	nad, err := kubeapi.NADConfig(filepath.Join("..", "..", "deployments", "network-attachment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	logs := map[int]string{}
	bases := map[int][]byte{}
	for w := 1; w <= 2; w++ {
		wn, err := api.Whereabouts(t.TempDir(), filepath.Join("/run/netns", node.netns(w)))
		if err != nil {
			t.Fatal(err)
		}
		logs[w], bases[w] = wn.LogFile, withFlatFile(t, nad, wn.FlatFile)
	}
	type pod struct {
		worker   int
		id, addr string
		netns    ns.NetNS
	}
	pods := []pod{{1, "wa-pod1", "0000:81:01.0", newPod(t)}, {2, "wa-pod2", "0000:81:01.0", newPod(t)}, {1, "wa-pod3", "0000:81:01.4", newPod(t)}}
	var ips []string
	for _, p := range pods {
		conf := e.confOf(bases[p.worker], p.worker, p.addr, nil)
		r, err := e.add(p.worker, p.id, p.netns, conf)
		if err != nil {
			t.Fatalf("worker %d: ADD %s: %v", p.worker, p.id, err)
		}
		t.Cleanup(func() { _ = e.del(p.worker, p.id, p.netns, conf) })
		ip := resultIP(t, r)
		if _, subnet, _ := net.ParseCIDR("198.51.100.0/24"); !subnet.Contains(ip) || ip.Equal(net.ParseIP("198.51.100.1")) {
			t.Errorf("%s: address %s, want one of 198.51.100.0/24 but the excluded gateway", p.id, ip)
		}
		if _, addrs, err := podLink(t, p.netns, "net1"); err != nil || len(addrs) != 1 || !addrs[0].IP.Equal(ip) {
			t.Errorf("%s: net1 addresses %v (%v), want %s", p.id, addrs, err, ip)
		}
		if slices.Contains(ips, ip.String()) {
			t.Errorf("%s on worker %d got %s, which an earlier pod has (%v)", p.id, p.worker, ip, ips)
		}
		ips = append(ips, ip.String())
	}
	if diff := cmp.Diff([]string{"default/wa-pod1", "default/wa-pod2", "default/wa-pod3"}, podRefs(api)); diff != "" {
		t.Errorf("IPPool allocations after the ADDs mismatch (-want +got):\n%s", diff)
	}
	if n := len(api.List(kubeapi.WhereaboutsGroup, overlapping, "")); n != len(pods) {
		t.Errorf("%d cluster-wide reservations after the ADDs, want %d", n, len(pods))
	}
	// Each worker's whereabouts ran with that worker's configuration: its log
	// names its own pods only.
	for w, want := range map[int][]string{1: {"wa-pod1", "wa-pod3"}, 2: {"wa-pod2"}} {
		b, err := os.ReadFile(logs[w])
		if err != nil {
			t.Fatalf("worker %d: whereabouts log: %v", w, err)
		}
		for _, p := range pods {
			if in := strings.Contains(string(b), `"`+p.id+`"`); in != slices.Contains(want, p.id) {
				t.Errorf("worker %d: whereabouts log names %s: %v, want %v", w, p.id, in, !in)
			}
		}
	}
	for _, p := range pods {
		if err := e.del(p.worker, p.id, p.netns, e.confOf(bases[p.worker], p.worker, p.addr, nil)); err != nil {
			t.Errorf("worker %d: DEL %s: %v", p.worker, p.id, err)
		}
	}
	if refs := podRefs(api); len(refs) != 0 {
		t.Errorf("IPPool allocations after DEL: %v, want none", refs)
	}
	if left := api.List(kubeapi.WhereaboutsGroup, overlapping, ""); len(left) != 0 {
		t.Errorf("cluster-wide reservations after DEL: %v, want none", left)
	}
}

// overlapping is the resource of whereabouts' cluster-wide reservations, one per
// address, which it keeps beside the IPPools (enable_overlapping_ranges, on by
// default).
const overlapping = "overlappingrangeipreservations"

// withFlatFile returns a NAD config whose IPAM config names a worker's
// whereabouts flat file, as a node's whereabouts install provides it.
func withFlatFile(t *testing.T, nad []byte, flat string) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(nad, &m); err != nil {
		t.Fatal(err)
	}
	ipam, _ := m["ipam"].(map[string]any)
	if ipam["type"] != "whereabouts" {
		t.Fatalf("the shipped NAD's IPAM is %v, not whereabouts", ipam["type"])
	}
	ipam["configuration_path"] = flat
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// podRefs lists the pods that hold addresses in any IPPool, sorted.
func podRefs(api *kubeapi.Server) []string {
	var refs []string
	for _, allocs := range api.Allocations() {
		for _, a := range allocs {
			ref, _ := a.(map[string]any)["podref"].(string)
			refs = append(refs, ref)
		}
	}
	slices.Sort(refs)
	return refs
}

// resultIP is the one address of an ADD's result.
func resultIP(t *testing.T, r types.Result) net.IP {
	t.Helper()
	res, err := current.NewResultFromResult(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.IPs) != 1 {
		t.Fatalf("result IPs %v, want one", res.IPs)
	}
	return res.IPs[0].Address.IP
}
