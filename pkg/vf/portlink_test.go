package vf_test

import (
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/emulate/sysfstree"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// TestPortLinkOf: a VF's port netdev is the PF4 netdev of its port, with the
// carrier and speed sysfs shows; none where the board has no PF4.
func TestPortLinkOf(t *testing.T) {
	tree, err := sysfstree.Build(t.TempDir(), sysfstree.Options{},
		sysfstree.Adapter{Model: "T62100-CR", VFs: [4]int{1, 1, 0, 0}},            // bus 81
		sysfstree.Adapter{Model: "T520-CR", VFs: [4]int{1, 0, 0, 0}, NoPF4: true}, // bus 83
	)
	if err != nil {
		t.Fatal(err)
	}
	ports := tree.Adapters[0].Ports
	for name, carrier := range map[string]string{ports[0].Name: "1", ports[1].Name: "0"} {
		if err := tree.SetNetdevAttr(name, "carrier", carrier); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(tree.Root.Path("class/net", ports[1].Name, "speed"), []byte("25000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		vf   string
		want *vf.PortLink
	}{
		{"0000:81:01.0", &vf.PortLink{Port: vf.Port{Index: 0, Netdev: ports[0].Name, MAC: ports[0].MAC}}},
		{"0000:81:01.1", &vf.PortLink{Port: vf.Port{Index: 1, Netdev: ports[1].Name, MAC: ports[1].MAC}, Down: true, SpeedMbps: 25000}},
		{"0000:83:01.0", nil},
	}
	for _, tt := range tests {
		t.Run(tt.vf, func(t *testing.T) {
			v, err := vf.LookupVF(tree.Root, vf.MustParsePCIAddr(tt.vf), vf.Options{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := vf.PortLinkOf(tree.Root, v)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("PortLinkOf(%s) mismatch (-want +got):\n%s", tt.vf, diff)
			}
		})
	}
}
