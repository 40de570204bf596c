package deviceplugin_test

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/deviceplugin"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/emulate/sysfstree"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// vanishing is one sysfs entry of the scan fixture that disappears and comes back.
type vanishing struct {
	name string
	// vfs are the VFs it concerns; every other VF must scan as if nothing happened.
	vfs []string
	// want is what a scan while the entry is gone gives for those VFs: "gone", or
	// the reason they are Unhealthy, or "" for unchanged.
	want    string
	vanish  func() error
	restore func() error
	// errAddr is the PCI function a scan's error names while the entry is gone
	// ("" for no error).
	errAddr string
}

// renamer makes an entry vanish by renaming it away, atomically, and back.
func renamer(path string) (vanish, restore func() error) {
	away := path + ".away"
	return func() error { return os.Rename(path, away) }, func() error { return os.Rename(away, path) }
}

// unlinker makes a symbolic link vanish and recreates it with its target.
func unlinker(t *testing.T, path string) (vanish, restore func() error) {
	t.Helper()
	target, err := os.Readlink(path)
	if err != nil {
		t.Fatal(err)
	}
	return func() error { return os.Remove(path) }, func() error { return os.Symlink(target, path) }
}

// vanishings are the entries of scanFixture that tests make vanish, each about
// different VFs. The VFs they leave alone: 81:01.0, 81:01.5 (vfio-pci), 83:01.3.
func vanishings(t *testing.T, tree *sysfstree.Tree) []vanishing {
	t.Helper()
	dir := func(addr string) string {
		d, err := tree.FunctionDir(vf.MustParsePCIAddr(addr))
		if err != nil {
			t.Fatal(err)
		}
		return tree.Root.Path(d)
	}
	var out []vanishing
	add := func(v vanishing, vanish, restore func() error) {
		v.vanish, v.restore = vanish, restore
		out = append(out, v)
	}
	// The VF's directory (the kernel removes it on hot unplug or sriov_numvfs
	// lowered): its bus/pci/devices link dangles.
	vd, vr := renamer(dir("0000:81:01.4"))
	add(vanishing{name: "VF directory", vfs: []string{"0000:81:01.4"}, want: "gone"}, vd, vr)
	// The bus/pci/devices link itself.
	vd, vr = unlinker(t, tree.Root.Path(sysfstree.DevicePath(vf.MustParsePCIAddr("0000:83:01.0"))))
	add(vanishing{name: "bus-pci-devices link", vfs: []string{"0000:83:01.0"}, want: "gone"}, vd, vr)
	// The driver link (an unbind).
	vd, vr = unlinker(t, dir("0000:81:01.1")+"/driver")
	add(vanishing{name: "driver link", vfs: []string{"0000:81:01.1"}, want: "driver changed from cxgb4vf to none"}, vd, vr)
	// net/ (the netdev moved into a pod): the VF stays, unchanged.
	vd, vr = renamer(dir("0000:81:01.2") + "/net")
	add(vanishing{name: "net directory", vfs: []string{"0000:81:01.2"}}, vd, vr)
	// The PF's sriov files: discovery cannot read the PF, so not its VFs either.
	vd, vr = renamer(dir("0000:83:00.1") + "/sriov_numvfs")
	add(vanishing{name: "PF sriov_numvfs", vfs: []string{"0000:83:01.1"}, want: "gone", errAddr: "0000:83:00.1"}, vd, vr)
	vd, vr = renamer(dir("0000:83:00.1") + "/sriov_totalvfs")
	add(vanishing{name: "PF sriov_totalvfs", vfs: []string{"0000:83:01.1"}, want: "gone", errAddr: "0000:83:00.1"}, vd, vr)
	// The PF's virtfnN link to the VF.
	vd, vr = unlinker(t, dir("0000:81:00.3")+"/virtfn0")
	add(vanishing{name: "PF virtfn link", vfs: []string{"0000:81:01.3"}, want: "gone", errAddr: "0000:81:01.3"}, vd, vr)
	return out
}

// placed maps each VF of a scan to its resource and device.
type placed struct {
	resource string
	dev      *deviceplugin.Device
}

func placement(tree deviceplugin.DeviceTree) map[string]placed {
	out := map[string]placed{}
	for name, r := range tree {
		for id, d := range r.Devices {
			out[id] = placed{name, d}
		}
	}
	return out
}

// checkScan compares a scan with the baseline. The entries of gone may have been
// missing during it: each VF one of them concerns must scan as the entry's want
// says, or, when mid is true (the entry may have come back during the scan), as in
// the baseline. Every other VF must be exactly as in the baseline, and the scan's
// error may name only functions that gone concerns.
func checkScan(base map[string]placed, got deviceplugin.DeviceTree, err error, gone []vanishing, mid bool) []string {
	if got == nil {
		return []string{fmt.Sprintf("nil tree (the whole scan aborted): %v", err)}
	}
	var problems []string
	if len(got) != 2 || got["chelsio.com/vf"] == nil || got["chelsio.com/vf-vfio"] == nil {
		problems = append(problems, fmt.Sprintf("resources %v, want chelsio.com/vf and chelsio.com/vf-vfio", slices.Sorted(maps.Keys(got))))
	}
	now := placement(got)
	expect := map[string]string{} // VF → want, for the VFs gone concerns
	errOK := map[string]bool{}
	for _, g := range gone {
		for _, id := range g.vfs {
			expect[id] = g.want
			errOK[id] = true
		}
		if g.errAddr != "" {
			errOK[g.errAddr] = true
		}
	}
	same := func(a, b placed) bool { return a.resource == b.resource && cmp.Equal(a.dev, b.dev) }
	for id, b := range base {
		n, present := now[id]
		want, concerned := expect[id]
		switch {
		case concerned && mid && present && same(b, n):
		case !concerned || want == "":
			if !present {
				problems = append(problems, id+" missing")
			} else if !same(b, n) {
				problems = append(problems, fmt.Sprintf("%s mismatch (-want +got):\n%s", id, cmp.Diff(b.dev, n.dev)))
			}
		case want == "gone":
			if present {
				problems = append(problems, fmt.Sprintf("%s listed in %s, want it gone", id, n.resource))
			}
		case !present:
			problems = append(problems, fmt.Sprintf("%s missing, want it in %s, Unhealthy: %s", id, b.resource, want))
		case n.resource != b.resource || n.dev.Healthy || n.dev.Reason != want:
			problems = append(problems, fmt.Sprintf("%s in %s, healthy %v (%s); want it in %s, Unhealthy: %s", id, n.resource, n.dev.Healthy, n.dev.Reason, b.resource, want))
		}
	}
	for id, n := range now {
		if _, ok := base[id]; !ok {
			problems = append(problems, fmt.Sprintf("%s listed in %s, not in the baseline", id, n.resource))
		}
	}
	if err != nil {
		errs := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = j.Unwrap()
		}
		for _, e := range errs {
			var de *vf.DeviceError
			if !errors.As(e, &de) || !errOK[de.Addr] {
				problems = append(problems, fmt.Sprintf("scan error about a function left alone: %v", e))
			}
		}
	}
	return problems
}

// TestChelsioScannerEntriesVanish makes each entry vanish in turn and scans: the
// VFs it concerns are gone, or Unhealthy, or unchanged (net/: the VF is in a pod),
// the others are listed as before; back, the scan is the baseline again.
func TestChelsioScannerEntriesVanish(t *testing.T) {
	tree := scanFixture(t)
	s := deviceplugin.NewChelsioScanner(tree.Root, deviceplugin.Default(""), nil)
	base := placement(mustScan(t, s))
	if len(base) != 9 {
		t.Fatalf("baseline has %d VFs, want 9", len(base))
	}
	for _, v := range vanishings(t, tree) {
		t.Run(v.name, func(t *testing.T) {
			if err := v.vanish(); err != nil {
				t.Fatal(err)
			}
			got, err := s.Scan()
			switch {
			case v.errAddr == "" && err != nil:
				t.Errorf("Scan() with %s gone: %v, want no error", v.name, err)
			case v.errAddr != "" && (err == nil || !strings.Contains(err.Error(), v.errAddr)):
				t.Errorf("Scan() with %s gone: error %v, want one about %s", v.name, err, v.errAddr)
			}
			for _, p := range checkScan(base, got, err, []vanishing{v}, false) {
				t.Errorf("%s gone: %s", v.name, p)
			}
			if err := v.restore(); err != nil {
				t.Fatal(err)
			}
			for _, p := range checkScan(base, mustScan(t, s), nil, nil, false) {
				t.Errorf("%s back: %s", v.name, p)
			}
		})
	}
}

// TestChelsioScannerEntriesVanishMidScan has a goroutine make the entries vanish
// and come back, one to three at a time, many times, while scans run (run it with
// -race): no scan panics or fails for the whole node, the VFs left alone are always
// listed as before, a VF whose entry was missing during the scan is gone, Unhealthy
// or as before, and once the goroutine stops every VF is back.
func TestChelsioScannerEntriesVanishMidScan(t *testing.T) {
	tree := scanFixture(t)
	s := deviceplugin.NewChelsioScanner(tree.Root, deviceplugin.Default(""), nil)
	base := placement(mustScan(t, s))
	vs := vanishings(t, tree)

	// vanished[i] counts how often entry i went; out[i] is whether it is gone now.
	var mu sync.Mutex
	vanished, out := make([]int, len(vs)), make([]bool, len(vs))
	state := func() ([]int, []bool) {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(vanished), slices.Clone(out)
	}
	var stop atomic.Bool
	cycles := 0
	done := make(chan error, 1)
	go func() {
		r := rand.New(rand.NewPCG(1, 2))
		for !stop.Load() {
			picked := r.Perm(len(vs))[:1+r.IntN(3)]
			for _, i := range picked {
				mu.Lock()
				vanished[i]++
				out[i] = true
				mu.Unlock()
				if err := vs[i].vanish(); err != nil {
					done <- fmt.Errorf("%s: vanish: %w", vs[i].name, err)
					return
				}
			}
			for range r.IntN(4) {
				runtime.Gosched()
			}
			for _, i := range picked {
				if err := vs[i].restore(); err != nil {
					done <- fmt.Errorf("%s: restore: %w", vs[i].name, err)
					return
				}
				mu.Lock()
				out[i] = false
				mu.Unlock()
			}
			cycles++
		}
		done <- nil
	}()

	const scans = 200
	seen := map[string]map[string]int{} // VF → what the scans saw of it → how often
	for id := range base {
		seen[id] = map[string]int{}
	}
	failures := 0
	for range scans {
		n0, out0 := state()
		got, err := s.Scan()
		n1, out1 := state()
		var maybe []vanishing // the entries that were gone at some point of the scan
		for i := range vs {
			if out0[i] || out1[i] || n0[i] != n1[i] {
				maybe = append(maybe, vs[i])
			}
		}
		for _, p := range checkScan(base, got, err, maybe, true) {
			if failures++; failures <= 10 {
				t.Errorf("scan while %v went: %s", names(maybe), p)
			}
		}
		now := placement(got)
		for id := range base {
			switch n, ok := now[id]; {
			case !ok:
				seen[id]["gone"]++
			case !n.dev.Healthy:
				seen[id]["unhealthy"]++
			default:
				seen[id]["listed"]++
			}
		}
	}
	stop.Store(true)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, p := range checkScan(base, mustScan(t, s), nil, nil, false) {
		t.Errorf("after the goroutine stopped: %s", p)
	}
	t.Logf("%d scans during %d vanish-and-return cycles; what the scans saw: %v", scans, cycles, seen)
}

func names(vs []vanishing) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.name
	}
	return out
}
