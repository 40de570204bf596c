package e2e

import (
	"regexp"
	"strconv"
	"testing"

	"github.com/chelsio-k8s/chelsio-sriov/internal/roottest"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/emulate"
)

// ueventRescansRE reads how many rescans uevents asked for from /metrics.
var ueventRescansRE = regexp.MustCompile(`(?m)^chelsio_sriov_dp_uevent_rescans_total (\d+)$`)

// TestPrivilegedDPUevents changes the VF count with `chelsio-vf setup` on the
// emulated node while the plugin rescans only once an hour, with neither file nor
// link events: the emulator's uevents are all that can tell it. The test kubelet
// sees PF0's 4 VFs become 2, then 4 again, and /metrics counts the rescans that
// uevents asked for.
func TestPrivilegedDPUevents(t *testing.T) {
	roottest.Require(t)
	d := upDPNode(t, "--vfs", "4")
	d.startDP(t, "", "--rescan-interval", "1h", "--file-watch=false", "--link-events=false")
	all := d.vfHealth(nil)
	d.wait(t, "4 healthy VFs", listedHealth("chelsio.com/vf", all))
	before := ueventRescans(t, d)

	if out, errb, err := d.setup(1, "--pf", "0", "--vfs", "2"); err != nil {
		t.Fatalf("setup --vfs 2: %v\n%s%s", err, out, errb)
	}
	d.wait(t, "PF0's first 2 VFs only", listedHealth("chelsio.com/vf", d.vfHealthOf(func(v emulate.VF) bool { return v.Index < 2 })))
	if out, errb, err := d.setup(1, "--pf", "0", "--vfs", "4"); err != nil {
		t.Fatalf("setup --vfs 4: %v\n%s%s", err, out, errb)
	}
	d.wait(t, "the 4 VFs back, healthy", listedHealth("chelsio.com/vf", all))
	// 4 -> 2 is 4 -> 0 -> 2, and 2 -> 4 is 2 -> 0 -> 4: four bursts of uevents. A
	// burst that finds the watcher at rest makes two rescans (at once, and after its
	// window); the first one does.
	if after := ueventRescans(t, d); after < before+2 {
		t.Errorf("uevent rescans went from %d to %d over four VF count changes; want at least 2 more", before, after)
	}
	d.dp.waitLog(t, "device removed")
}

// vfHealthOf is the health map of the worker's VFs for which keep is true, all
// healthy.
func (d *dpNode) vfHealthOf(keep func(v emulate.VF) bool) map[string]string {
	out := d.vfHealth(nil)
	for _, v := range d.worker.VFs {
		if !keep(v) {
			delete(out, v.Addr.String())
		}
	}
	return out
}

func ueventRescans(t *testing.T, d *dpNode) int {
	t.Helper()
	body := d.metrics(t)
	m := ueventRescansRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("/metrics has no chelsio_sriov_dp_uevent_rescans_total:\n%s", body)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}
