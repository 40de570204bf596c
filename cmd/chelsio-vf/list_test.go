package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/emulate/sysfstree"
)

// TestListPFWithoutSRIOV: a PF0-3 without SR-IOV (no sriov_* files: the firmware
// config gives it no VFs) is listed as such, and the command succeeds; it is not a
// skipped, broken device.
func TestListPFWithoutSRIOV(t *testing.T) {
	sriovFiles := []string{"sriov_totalvfs", "sriov_numvfs", "sriov_offset", "sriov_stride", "sriov_drivers_autoprobe", "sriov_vf_device"}
	tests := []struct {
		name     string
		vfs      [4]int   // VFs of each PF
		noSRIOV  []int    // PFs without SR-IOV
		wantText []string // lines of the text output
		wantJSON []string // pciAddress of each VF
	}{
		{
			name:    "PF2 without SR-IOV",
			vfs:     [4]int{1},
			noSRIOV: []int{2},
			wantText: []string{
				"Adapter 0000:81:00: T6 T62100-CR, 2 ports, NUMA -, 1 VFs",
				"  PF0 0000:81:00.0: 1/16 VFs, driver cxgb4, mgmt mgmtpf1,0",
				"  PF2 0000:81:00.2: 0 VFs (no SR-IOV), driver cxgb4, mgmt -",
				"  PF3 0000:81:00.3: 0/16 VFs, driver cxgb4, mgmt -",
			},
			wantJSON: []string{"0000:81:01.0"},
		},
		{
			name:    "no PF with SR-IOV",
			noSRIOV: []int{0, 1, 2, 3},
			wantText: []string{
				"  PF0 0000:81:00.0: 0 VFs (no SR-IOV), driver cxgb4, mgmt -",
				"No VFs: no PF0-3 has SR-IOV; the adapter's firmware config gives them no VFs.",
			},
			wantJSON: []string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tree, err := sysfstree.Build(t.TempDir(), sysfstree.Options{}, sysfstree.Adapter{Model: "T62100-CR", NUMANode: -1, VFs: tt.vfs})
			if err != nil {
				t.Fatal(err)
			}
			for _, pf := range tt.noSRIOV {
				for _, f := range sriovFiles {
					if err := os.Remove(tree.Root.Path(sysfstree.DevicePath(tree.Adapters[0].PFs[pf]), f)); err != nil {
						t.Fatal(err)
					}
				}
			}

			var out, errOut bytes.Buffer
			if code := run(context.Background(), []string{"list", "--sysfs-root", string(tree.Root)}, &out, &errOut); code != 0 || errOut.Len() > 0 {
				t.Fatalf("list = exit %d, stderr %q; want 0 and nothing", code, errOut.String())
			}
			lines := strings.Split(out.String(), "\n")
			for _, l := range tt.wantText {
				if !slices.Contains(lines, l) {
					t.Errorf("list output lacks the line %q:\n%s", l, out.String())
				}
			}

			out.Reset()
			if code := run(context.Background(), []string{"list", "--json", "--sysfs-root", string(tree.Root)}, &out, &errOut); code != 0 || errOut.Len() > 0 {
				t.Fatalf("list --json = exit %d, stderr %q; want 0 and nothing", code, errOut.String())
			}
			var got []struct {
				PCIAddress string `json:"pciAddress"`
			}
			if err := json.Unmarshal(out.Bytes(), &got); err != nil {
				t.Fatalf("list --json: %v:\n%s", err, out.String())
			}
			addrs := []string{}
			for _, v := range got {
				addrs = append(addrs, v.PCIAddress)
			}
			if diff := cmp.Diff(tt.wantJSON, addrs); diff != "" {
				t.Errorf("list --json VFs mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
