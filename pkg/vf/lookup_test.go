package vf_test

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/emulate/sysfstree"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// lookupAdapters cover 2- and 4-port boards, VFs on cxgb4vf, vfio-pci and none, a
// board without PF4, an unknown board, a non-Chelsio card and a T7.
var lookupAdapters = []sysfstree.Adapter{
	{
		Model: "T62100-CR", NUMANode: 1, VFs: [4]int{4, 2, 0, 0}, // bus 81
		Drivers: map[sysfstree.VFRef]string{{PF: 0, VF: 1}: vf.DriverVFIO, {PF: 0, VF: 2}: ""},
	},
	{Model: "T540-CR", VFs: [4]int{1, 1, 1, 1}, Drivers: map[sysfstree.VFRef]string{{PF: 3, VF: 0}: vf.DriverVFIO}},   // bus 83
	{Model: "T520-CR", VFs: [4]int{0, 0, 1, 2}, NoPF4: true, Drivers: map[sysfstree.VFRef]string{{PF: 3, VF: 1}: ""}}, // bus 85
	{DeviceID: 0x6077, VFs: [4]int{0, 1, 0, 0}, Drivers: map[sysfstree.VFRef]string{{PF: 1, VF: 0}: vf.DriverVFIO}},   // bus 87, unknown T6 board
	{Vendor: 0x8086, VFs: [4]int{1, 0, 0, 0}}, // bus 89
	{Model: "T7250", VFs: [4]int{1, 0, 0, 0}}, // bus 8b
	// bus 8d: a 4-port model with 2 port netdevs; VF0 of PF2 derives port 2 mod 2.
	{Model: "T540-CR", Ports: 2, VFs: [4]int{0, 0, 1, 0}, Drivers: map[sysfstree.VFRef]string{{PF: 2, VF: 0}: vf.DriverVFIO}},
}

func TestLookupVFMatchesDiscover(t *testing.T) {
	tree := mgmtTree(t, lookupAdapters...)
	for _, opts := range []vf.Options{{}, {AllowT7: true}} {
		node, err := vf.Discover(tree.Root, opts)
		if err != nil {
			t.Fatalf("Discover(%+v) error: %v", opts, err)
		}
		vfs := node.VFs()
		if want := 15 + map[bool]int{true: 1}[opts.AllowT7]; len(vfs) != want {
			t.Fatalf("Discover(%+v) found %d VFs, want %d", opts, len(vfs), want)
		}
		for _, want := range vfs {
			got, err := vf.LookupVF(tree.Root, want.Addr, opts)
			if err != nil {
				t.Errorf("LookupVF(%s, %+v) error: %v", want.Addr, opts, err)
				continue
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("LookupVF(%s, %+v) mismatch with Discover (-want +got):\n%s", want.Addr, opts, diff)
			}
		}
	}
}

// TestLookupVFBrokenNeighbours checks the cases in which Discover reports other
// functions as broken but still returns the VF: LookupVF returns the same VF.
func TestLookupVFBrokenNeighbours(t *testing.T) {
	tests := []struct {
		name    string
		breakIt func(t *testing.T, tree *sysfstree.Tree)
		vfs     []string
		check   func(t *testing.T, v *vf.VF) // of each VF LookupVF returns
	}{
		{
			name: "PF4 dev_port garbage: ports from the model",
			breakIt: func(t *testing.T, tree *sysfstree.Tree) {
				setNetAttr(t, tree, "enp141s0f4d1", "dev_port", "garbage")
			},
			vfs: []string{"0000:8d:01.2"},
			check: func(t *testing.T, v *vf.VF) {
				if v.Port != 2 || !v.PortDerived {
					t.Errorf("VF %s: port %d (derived %v), want 2 derived from the T540-CR's 4 ports", v.Addr, v.Port, v.PortDerived)
				}
			},
		},
		{
			name:    "another PF broken",
			breakIt: func(t *testing.T, tree *sysfstree.Tree) { remove(t, tree, "bus/pci/devices/0000:83:00.1/sriov_numvfs") },
			vfs:     []string{"0000:83:01.0", "0000:83:01.3"},
		},
		{
			name: "every other bus/pci/devices entry gone",
			breakIt: func(t *testing.T, tree *sysfstree.Tree) {
				keep := map[string]bool{"0000:81:01.4": true, "0000:81:00.0": true, "0000:81:00.4": true}
				names, err := tree.Root.ReadDir("bus/pci/devices")
				if err != nil {
					t.Fatal(err)
				}
				for _, n := range names {
					if !keep[n] {
						if err := os.Remove(tree.Root.Path("bus/pci/devices", n)); err != nil {
							t.Fatal(err)
						}
					}
				}
			},
			vfs: []string{"0000:81:01.4"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tree := mgmtTree(t, lookupAdapters...)
			before, _ := vf.Discover(tree.Root, vf.Options{})
			tt.breakIt(t, tree)
			node, _ := vf.Discover(tree.Root, vf.Options{})
			for _, a := range tt.vfs {
				addr := vf.MustParsePCIAddr(a)
				want, ok := node.VF(addr)
				if !ok {
					// Discover no longer sees it (no bus/pci/devices entry): compare with
					// what it saw before the break.
					if want, ok = before.VF(addr); !ok {
						t.Fatalf("Discover() never found %s", a)
					}
				}
				got, err := vf.LookupVF(tree.Root, addr, vf.Options{})
				if err != nil {
					t.Fatalf("LookupVF(%s) error: %v", a, err)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("LookupVF(%s) mismatch with Discover (-want +got):\n%s", a, diff)
				}
				if tt.check != nil {
					tt.check(t, got)
				}
			}
		})
	}
}

func TestLookupVFErrors(t *testing.T) {
	tests := []struct {
		name    string
		addr    string
		opts    vf.Options
		breakIt func(t *testing.T, tree *sysfstree.Tree)
		is      error    // errors.Is target, or nil
		notIs   error    // must not match
		text    []string // the message holds each; "$ROOT" stands for the tree's root
	}{
		{
			name: "Intel VF", addr: "0000:89:01.0", is: vf.ErrNotChelsioVF,
			text: []string{"0000:89:01.0", "8086:680d", "not a Chelsio VF"},
		},
		{
			name: "Chelsio PF0", addr: "0000:81:00.0", is: vf.ErrNotChelsioVF,
			text: []string{"0000:81:00.0", "1425:600d"},
		},
		{
			name: "Chelsio PF4", addr: "0000:81:00.4", is: vf.ErrNotChelsioVF,
			text: []string{"0000:81:00.4", "1425:640d"},
		},
		{
			name: "T7 VF without AllowT7", addr: "0000:8b:01.0", is: vf.ErrNotChelsioVF,
			text: []string{"0000:8b:01.0", "1425:7801", "AllowT7"},
		},
		{
			name: "no such function", addr: "0000:99:01.0", is: fs.ErrNotExist, notIs: vf.ErrNotChelsioVF,
			text: []string{"0000:99:01.0"},
		},
		{
			name: "vendor garbage", addr: "0000:81:01.0", notIs: vf.ErrNotChelsioVF,
			breakIt: func(t *testing.T, tree *sysfstree.Tree) { writeDevAttr(t, tree, "0000:81:01.0", "vendor", "0xzz") },
			text:    []string{"0000:81:01.0", "$ROOT/bus/pci/devices/0000:81:01.0/vendor"},
		},
		{
			name: "physfn missing", addr: "0000:81:01.0", is: fs.ErrNotExist, notIs: vf.ErrNotChelsioVF,
			breakIt: func(t *testing.T, tree *sysfstree.Tree) { remove(t, tree, "bus/pci/devices/0000:81:01.0/physfn") },
			text:    []string{"0000:81:01.0", "$ROOT/bus/pci/devices/0000:81:01.0/physfn"},
		},
		{
			name: "physfn to PF4", addr: "0000:81:01.5",
			breakIt: func(t *testing.T, tree *sysfstree.Tree) {
				relink(t, tree, "bus/pci/devices/0000:81:01.5/physfn", "../0000:81:00.4")
			},
			text: []string{"0000:81:01.5", "not a usable Chelsio PF0-3"},
		},
		{
			name: "parent PF sriov_numvfs missing", addr: "0000:81:01.1", is: fs.ErrNotExist,
			breakIt: func(t *testing.T, tree *sysfstree.Tree) { remove(t, tree, "bus/pci/devices/0000:81:00.1/sriov_numvfs") },
			text:    []string{"0000:81:01.1", "$ROOT/bus/pci/devices/0000:81:00.1/sriov_numvfs"},
		},
		{
			name: "no virtfn link to the VF", addr: "0000:81:02.0",
			breakIt: func(t *testing.T, tree *sysfstree.Tree) { remove(t, tree, "bus/pci/devices/0000:81:00.0/virtfn2") },
			text:    []string{"0000:81:02.0", "virtfn"},
		},
	}
	shared := mgmtTree(t, lookupAdapters...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tree := shared
			if tt.breakIt != nil {
				tree = mgmtTree(t, lookupAdapters...)
				tt.breakIt(t, tree)
			}
			got, err := vf.LookupVF(tree.Root, vf.MustParsePCIAddr(tt.addr), tt.opts)
			if err == nil {
				t.Fatalf("LookupVF(%s) = %+v, want an error", tt.addr, got)
			}
			if got != nil {
				t.Errorf("LookupVF(%s) returned %+v with its error", tt.addr, got)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("LookupVF(%s) error %q does not match %v", tt.addr, err, tt.is)
			}
			if tt.notIs != nil && errors.Is(err, tt.notIs) {
				t.Errorf("LookupVF(%s) error %q matches %v", tt.addr, err, tt.notIs)
			}
			for _, s := range tt.text {
				s = strings.ReplaceAll(s, "$ROOT", string(tree.Root))
				if !strings.Contains(err.Error(), s) {
					t.Errorf("LookupVF(%s) error %q does not contain %q", tt.addr, err, s)
				}
			}
		})
	}
}

func TestLookupVFT7Allowed(t *testing.T) {
	tree := mgmtTree(t, sysfstree.Adapter{Model: "T7250", VFs: [4]int{1, 0, 0, 0}})
	got, err := vf.LookupVF(tree.Root, vf.MustParsePCIAddr("0000:81:01.0"), vf.Options{AllowT7: true})
	if err != nil {
		t.Fatalf("LookupVF(T7, AllowT7) error: %v", err)
	}
	if got.Chip != vf.T7 || got.Model != "T7250" || got.MgmtNetdev != "mgmtpf1,0" {
		t.Errorf("LookupVF(T7, AllowT7) = %+v, want a T7250 VF of mgmtpf1,0", got)
	}
}

func writeDevAttr(t testing.TB, tree *sysfstree.Tree, addr, attr, value string) {
	t.Helper()
	if err := os.WriteFile(tree.Root.Path("bus/pci/devices", addr, attr), []byte(value+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkLookupVF looks up VFs one by one on a node with four T62100-CR cards, 16
// VFs on each of PF0-PF3 (256 VFs): the CNI plugin's path. Compare BenchmarkDiscover.
func BenchmarkLookupVF(b *testing.B) {
	a := sysfstree.Adapter{Model: "T62100-CR", TotalVFs: 16, VFs: [4]int{16, 16, 16, 16}}
	tree := mgmtTree(b, a, a, a, a)
	node, err := vf.Discover(tree.Root, vf.Options{})
	if err != nil {
		b.Fatalf("Discover() error: %v", err)
	}
	vfs := node.VFs()
	if len(vfs) != 256 {
		b.Fatalf("Discover() found %d VFs, want 256", len(vfs))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := vf.LookupVF(tree.Root, vfs[i%len(vfs)].Addr, vf.Options{}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
