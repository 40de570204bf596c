package vf_test

import (
	"testing"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/emulate/sysfstree"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// BenchmarkDiscover reads a node with four T62100-CR cards, 16 VFs on each of
// PF0-PF3: 256 VFs, 276 Chelsio functions.
func BenchmarkDiscover(b *testing.B) {
	a := sysfstree.Adapter{Model: "T62100-CR", TotalVFs: 16, VFs: [4]int{16, 16, 16, 16}}
	tree, err := sysfstree.Build(b.TempDir(), sysfstree.Options{}, a, a, a, a)
	if err != nil {
		b.Fatalf("sysfstree.Build() error: %v", err)
	}
	node, err := vf.Discover(tree.Root, vf.Options{})
	if err != nil {
		b.Fatalf("Discover() error: %v", err)
	}
	if n := len(node.VFs()); n != 256 {
		b.Fatalf("Discover() found %d VFs, want 256", n)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := vf.Discover(tree.Root, vf.Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

var sinkAddr vf.PCIAddr

func BenchmarkParsePCIAddr(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		a, err := vf.ParsePCIAddr("0000:81:01.4")
		if err != nil {
			b.Fatal(err)
		}
		sinkAddr = a
	}
}

var sinkProduct vf.Product

func BenchmarkLookupID(b *testing.B) {
	ids := []uint16{0x680d, 0x600d, 0x640d, 0x5801, 0x4880, 0x58b0, 0x6892, 0x580f, 0x7801, 0x8086}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p, _, _ := vf.LookupID(ids[i%len(ids)])
		sinkProduct = p
		i++
	}
}
