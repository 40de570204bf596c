package deviceplugin_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/chelsio-k8s/chelsio-sriov/internal/kubelettest"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/deviceplugin"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/emulate/sysfstree"
)

// tree256 builds a node with four T62100-CR cards, 16 VFs on each of PF0-PF3: 256
// VFs on cxgb4vf, every port with carrier.
func tree256(b *testing.B) *sysfstree.Tree {
	b.Helper()
	a := sysfstree.Adapter{Model: "T62100-CR", TotalVFs: 16, VFs: [4]int{16, 16, 16, 16}}
	tree, err := sysfstree.Build(b.TempDir(), sysfstree.Options{}, a, a, a, a)
	if err != nil {
		b.Fatalf("sysfstree.Build: %v", err)
	}
	portsUp(b, tree)
	return tree
}

// BenchmarkScan256 is one rescan of a 256-VF node with the zero-config pools:
// discovery, pool assignment and health.
func BenchmarkScan256(b *testing.B) {
	tree := tree256(b)
	s := deviceplugin.NewChelsioScanner(tree.Root, deviceplugin.Default(""), nil)
	got, err := s.Scan()
	if err != nil {
		b.Fatal(err)
	}
	if n := len(got["chelsio.com/vf"].Devices); n != 256 {
		b.Fatalf("Scan found %d devices in chelsio.com/vf, want 256", n)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Scan(); err != nil {
			b.Fatal(err)
		}
	}
}

// shortDir makes a directory for unix sockets: their paths are limited to 108 bytes,
// which b.TempDir() can exceed.
func shortDir(b *testing.B) string {
	b.Helper()
	dir, err := os.MkdirTemp("", "dp-")
	if err != nil {
		b.Fatal(err)
	}
	return dir
}

// has256 is a kubelettest condition: chelsio.com/vf listed with 256 devices.
func has256(p map[string]*kubelettest.Plugin) bool {
	vf := p["chelsio.com/vf"]
	return vf != nil && len(vf.Devices) == 256
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// BenchmarkStartToFirstList is the time from Manager.Run to the test kubelet's first
// ListAndWatch response with the 256 VFs of chelsio.com/vf: the first scan, the
// servers, registration, kubelet's dial back and the list. Each iteration starts a
// fresh kubelet and Manager in a fresh directory; only Run's start to the list is
// timed, and reported as ms/start.
func BenchmarkStartToFirstList(b *testing.B) {
	tree := tree256(b)
	var total time.Duration
	b.ResetTimer() // not the tree's construction
	b.StopTimer()
	for range b.N {
		dir := shortDir(b)
		k, err := kubelettest.Start(dir)
		if err != nil {
			b.Fatal(err)
		}
		m := deviceplugin.NewManager(deviceplugin.NewChelsioScanner(tree.Root, deviceplugin.Default(""), nil), quietLog())
		m.Dir = dir
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)

		b.StartTimer()
		t0 := time.Now()
		go func() { done <- m.Run(ctx) }()
		wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = k.Wait(wctx, has256)
		elapsed := time.Since(t0)
		b.StopTimer()

		wcancel()
		cancel()
		if rerr := <-done; rerr != nil {
			b.Errorf("Run: %v", rerr)
		}
		k.Close()
		os.RemoveAll(dir)
		if err != nil {
			b.Fatalf("no list of 256 devices: %v", err)
		}
		total += elapsed
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/start")
}

// BenchmarkAllocate is the test kubelet's Allocate of one device of a 256-VF
// resource, over gRPC on a unix socket: with the Multus device-info file Allocate
// writes on a node, and without it (--device-info-dir ""). ns/op is the mean;
// p50-ns and p99-ns are the median and 99th percentile of the calls.
func BenchmarkAllocate(b *testing.B) {
	tree := tree256(b)
	for _, bc := range []struct {
		name     string
		withInfo bool
	}{{"device-info", true}, {"no-device-info", false}} {
		b.Run(bc.name, func(b *testing.B) {
			infoDir := ""
			if bc.withInfo {
				infoDir = b.TempDir()
			}
			benchmarkAllocate(b, tree, infoDir)
		})
	}
}

func benchmarkAllocate(b *testing.B, tree *sysfstree.Tree, infoDir string) {
	k := kubelettest.StartTest(b, "dp-")
	m := deviceplugin.NewManager(deviceplugin.NewChelsioScanner(tree.Root, deviceplugin.Default(""), nil), quietLog())
	m.Dir, m.DeviceInfoDir, m.Interval = k.Dir, infoDir, time.Hour
	runManager(b, m)
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	if err := k.Wait(wctx, has256); err != nil {
		b.Fatalf("no list of 256 devices: %v", err)
	}
	p, _ := k.Snapshot("chelsio.com/vf")
	ids := make([]string, len(p.Devices))
	for i, d := range p.Devices {
		ids[i] = d.ID
	}
	lat := make([]time.Duration, 0, b.N)
	bctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		if _, err := k.Allocate(bctx, "chelsio.com/vf", ids[i%len(ids)]); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}
