package deviceplugin_test

import (
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/deviceplugin"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/servedby"
)

// Two scanners on one node with one served-by directory, as the device plugin and
// the DRA driver run: the one that scans first offers the VFs, the other offers
// none of them until the first lets them go.
func TestScannerServedBy(t *testing.T) {
	tree := scanFixture(t)
	dir := filepath.Join(t.TempDir(), "served-by")
	dp := deviceplugin.NewChelsioScanner(tree.Root, deviceplugin.Default(""), nil)
	dp.Served = servedby.New(dir, "chelsio-sriov-dp")
	other := deviceplugin.NewChelsioScanner(tree.Root, deviceplugin.Default(""), nil)
	otherLocks := servedby.New(dir, "chelsio-sriov-dra")
	other.Served = otherLocks
	defer otherLocks.Close()

	first := pools(mustScan(t, dp))
	if len(first["chelsio.com/vf"]) == 0 || len(first["chelsio.com/vf-vfio"]) == 0 {
		t.Fatalf("first scanner offers %v; want every VF", first)
	}
	empty := map[string][]string{"chelsio.com/vf": {}, "chelsio.com/vf-vfio": {}}
	if diff := cmp.Diff(empty, pools(mustScan(t, other))); diff != "" {
		t.Errorf("second scanner offers VFs the first holds (-want +got):\n%s", diff)
	}
	dp.SetConfig(&deviceplugin.Config{}) // the first now selects nothing: it lets every VF go
	if got := pools(mustScan(t, dp)); len(got) != 0 {
		t.Fatalf("first scanner with no pool offers %v", got)
	}
	if diff := cmp.Diff(first, pools(mustScan(t, other))); diff != "" {
		t.Errorf("second scanner after the first let go (-want +got):\n%s", diff)
	}
}
