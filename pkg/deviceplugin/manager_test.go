package deviceplugin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/chelsio-k8s/chelsio-sriov/internal/kubelettest"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/deviceplugin"
)

// fakeScanner returns whatever tree the test sets.
type fakeScanner struct {
	mu   sync.Mutex
	tree deviceplugin.DeviceTree
}

func (f *fakeScanner) Scan() (deviceplugin.DeviceTree, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := deviceplugin.DeviceTree{}
	for n, r := range f.tree {
		c := *r
		c.Devices = map[string]*deviceplugin.Device{}
		for id, d := range r.Devices {
			dd := *d
			c.Devices[id] = &dd
		}
		out[n] = &c
	}
	return out, nil
}

func (f *fakeScanner) set(fn func(t deviceplugin.DeviceTree)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f.tree)
}

// twoNUMATwoPorts is a resource of 8 VFs: NUMA 0 holds adapter A (ports 0 and 1),
// NUMA 1 holds adapter B; one VF is on vfio-pci.
func twoNUMATwoPorts(prefix, name string) *deviceplugin.Resource {
	r := &deviceplugin.Resource{Prefix: prefix, Name: name, Devices: map[string]*deviceplugin.Device{}}
	add := func(id, adapter string, numa, port int, driver string, group int) {
		r.Devices[id] = &deviceplugin.Device{ID: id, Healthy: true, NUMANode: numa, Adapter: adapter, Port: port, PF: adapter + ".0", Driver: driver, IOMMUGroup: group}
	}
	add("0000:81:01.0", "0000:81:00", 0, 0, "cxgb4vf", 60)
	add("0000:81:01.1", "0000:81:00", 0, 1, "cxgb4vf", 61)
	add("0000:81:01.4", "0000:81:00", 0, 0, "cxgb4vf", 62)
	add("0000:81:01.5", "0000:81:00", 0, 1, "cxgb4vf", 63)
	add("0000:c1:01.0", "0000:c1:00", 1, 0, "cxgb4vf", 70)
	add("0000:c1:01.1", "0000:c1:00", 1, 1, "cxgb4vf", 71)
	add("0000:c1:01.4", "0000:c1:00", 1, 0, "vfio-pci", 72)
	add("0000:c1:01.5", "0000:c1:00", 1, 1, "cxgb4vf", 73)
	return r
}

type harness struct {
	t       *testing.T
	kubelet *kubelettest.Kubelet
	scanner *fakeScanner
	m       *deviceplugin.Manager
	cancel  context.CancelFunc
	done    chan error
	infoDir string
}

func start(t *testing.T, tree deviceplugin.DeviceTree) *harness {
	t.Helper()
	dir, err := os.MkdirTemp("", "dp-") // short: unix socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	k, err := kubelettest.Start(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	h := &harness{t: t, kubelet: k, scanner: &fakeScanner{tree: tree}, done: make(chan error, 1), infoDir: t.TempDir()}
	h.m = deviceplugin.NewManager(h.scanner, slog.New(slog.NewTextHandler(io.Discard, nil)))
	h.m.Dir, h.m.Interval, h.m.DeviceInfoDir = dir, 20*time.Millisecond, h.infoDir
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- h.m.Run(ctx) }()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		h.t.Error("Run did not return")
	}
}

func wait(t *testing.T, k *kubelettest.Kubelet, what string, cond func(map[string]*kubelettest.Plugin) bool) {
	t.Helper()
	k.MustWait(t, what, 5*time.Second, cond)
}

type listed struct {
	ID, Health string
	NUMA       []int64
}

func devices(p *kubelettest.Plugin) []listed {
	var out []listed
	for _, d := range p.Devices {
		l := listed{ID: d.ID, Health: d.Health}
		if d.Topology != nil {
			for _, n := range d.Topology.Nodes {
				l.NUMA = append(l.NUMA, n.ID)
			}
		}
		out = append(out, l)
	}
	return out
}

func TestRegistersAndListsWithTopology(t *testing.T) {
	r := twoNUMATwoPorts("chelsio.com", "vf")
	r.Devices["0000:81:01.0"].NUMANode = -1 // unknown: no topology
	h := start(t, deviceplugin.DeviceTree{"chelsio.com/vf": r, "chelsio.com/empty": {Prefix: "chelsio.com", Name: "empty", Devices: map[string]*deviceplugin.Device{}}})
	wait(t, h.kubelet, "both resources listed", func(p map[string]*kubelettest.Plugin) bool {
		return p["chelsio.com/vf"] != nil && p["chelsio.com/vf"].Lists > 0 && p["chelsio.com/empty"] != nil && p["chelsio.com/empty"].Lists > 0
	})
	p, _ := h.kubelet.Snapshot("chelsio.com/vf")
	if !p.Options.GetPreferredAllocationAvailable {
		t.Error("GetDevicePluginOptions does not announce GetPreferredAllocation")
	}
	want := []listed{
		{"0000:81:01.0", "Healthy", nil},
		{"0000:81:01.1", "Healthy", []int64{0}},
		{"0000:81:01.4", "Healthy", []int64{0}},
		{"0000:81:01.5", "Healthy", []int64{0}},
		{"0000:c1:01.0", "Healthy", []int64{1}},
		{"0000:c1:01.1", "Healthy", []int64{1}},
		{"0000:c1:01.4", "Healthy", []int64{1}},
		{"0000:c1:01.5", "Healthy", []int64{1}},
	}
	if diff := cmp.Diff(want, devices(&p)); diff != "" {
		t.Errorf("ListAndWatch mismatch (-want +got):\n%s", diff)
	}
	if e, _ := h.kubelet.Snapshot("chelsio.com/empty"); len(e.Devices) != 0 {
		t.Errorf("empty resource lists %d devices", len(e.Devices))
	}
}

func TestHealthChangesReachKubelet(t *testing.T) {
	h := start(t, deviceplugin.DeviceTree{"chelsio.com/vf": twoNUMATwoPorts("chelsio.com", "vf")})
	wait(t, h.kubelet, "listed", func(p map[string]*kubelettest.Plugin) bool {
		return p["chelsio.com/vf"] != nil && len(p["chelsio.com/vf"].Devices) == 8
	})
	h.scanner.set(func(tr deviceplugin.DeviceTree) {
		d := tr["chelsio.com/vf"].Devices["0000:81:01.1"]
		d.Healthy, d.Reason = false, "port 1 link down"
		delete(tr["chelsio.com/vf"].Devices, "0000:c1:01.5")
	})
	t0 := time.Now()
	wait(t, h.kubelet, "unhealthy and removed", func(p map[string]*kubelettest.Plugin) bool {
		got := map[string]string{}
		for _, d := range p["chelsio.com/vf"].Devices {
			got[d.ID] = d.Health
		}
		_, present := got["0000:c1:01.5"]
		return got["0000:81:01.1"] == pluginapi.Unhealthy && !present && len(got) == 7
	})
	t.Logf("kubelet saw the change after %v", time.Since(t0))
	h.scanner.set(func(tr deviceplugin.DeviceTree) {
		tr["chelsio.com/vf"].Devices["0000:81:01.1"].Healthy = true
	})
	wait(t, h.kubelet, "healthy again", func(p map[string]*kubelettest.Plugin) bool {
		for _, d := range p["chelsio.com/vf"].Devices {
			if d.ID == "0000:81:01.1" {
				return d.Health == pluginapi.Healthy
			}
		}
		return false
	})
}

func TestAllocate(t *testing.T) {
	tests := []struct {
		name, prefix, res, env string
	}{
		{"seed config with --resource-prefix intel.com", "intel.com", "chelsio_sriov_netdevice", "PCIDEVICE_INTEL_COM_CHELSIO_SRIOV_NETDEVICE"},
		{"seed config with the default prefix", "chelsio.com", "chelsio_sriov_netdevice", "PCIDEVICE_CHELSIO_COM_CHELSIO_SRIOV_NETDEVICE"},
		{"hyphen", "example.org", "vf-vfio", "PCIDEVICE_EXAMPLE_ORG_VF_VFIO"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			full := tt.prefix + "/" + tt.res
			h := start(t, deviceplugin.DeviceTree{full: twoNUMATwoPorts(tt.prefix, tt.res)})
			wait(t, h.kubelet, "listed", func(p map[string]*kubelettest.Plugin) bool { return p[full] != nil && p[full].Lists > 0 })
			ctx := context.Background()
			car, err := h.kubelet.Allocate(ctx, full, "0000:81:01.0", "0000:c1:01.4")
			if err != nil {
				t.Fatal(err)
			}
			if got := car.Envs[tt.env]; got != "0000:81:01.0,0000:c1:01.4" {
				t.Errorf("%s = %q (envs %v)", tt.env, got, slices.Collect(maps.Keys(car.Envs)))
			}
			var info map[string]map[string]map[string]string
			if err := json.Unmarshal([]byte(car.Envs[tt.env+"_INFO"]), &info); err != nil {
				t.Fatalf("%s_INFO: %v", tt.env, err)
			}
			if info["0000:81:01.0"]["generic"]["deviceID"] != "0000:81:01.0" || info["0000:c1:01.4"]["vfio"]["dev-mount"] != "/dev/vfio/72" {
				t.Errorf("_INFO = %v", info)
			}
			wantSpecs := []*pluginapi.DeviceSpec{
				{ContainerPath: "/dev/vfio/vfio", HostPath: "/dev/vfio/vfio", Permissions: "rw"},
				{ContainerPath: "/dev/vfio/72", HostPath: "/dev/vfio/72", Permissions: "rw"},
			}
			if diff := cmp.Diff(wantSpecs, car.Devices, cmp.Comparer(func(a, b *pluginapi.DeviceSpec) bool {
				return a.ContainerPath == b.ContainerPath && a.HostPath == b.HostPath && a.Permissions == b.Permissions
			})); diff != "" {
				t.Errorf("device specs mismatch (-want +got):\n%s", diff)
			}
			b, err := os.ReadFile(deviceplugin.DeviceInfoPath(h.infoDir, full, "0000:81:01.0"))
			if err != nil {
				t.Fatalf("device-info file: %v", err)
			}
			var di struct {
				Type string
				PCI  map[string]string
			}
			if err := json.Unmarshal(b, &di); err != nil || di.Type != "pci" || di.PCI["pci-address"] != "0000:81:01.0" {
				t.Errorf("device-info = %s (%v)", b, err)
			}
			if _, err := h.kubelet.Allocate(ctx, full, "0000:99:01.0"); err == nil {
				t.Error("Allocate of an unknown device succeeded")
			}
		})
	}
}

func TestAllocateRefusesUnhealthy(t *testing.T) {
	r := twoNUMATwoPorts("chelsio.com", "vf")
	r.Devices["0000:81:01.1"].Healthy, r.Devices["0000:81:01.1"].Reason = false, "port 1 link down"
	h := start(t, deviceplugin.DeviceTree{"chelsio.com/vf": r})
	wait(t, h.kubelet, "listed", func(p map[string]*kubelettest.Plugin) bool {
		return p["chelsio.com/vf"] != nil && p["chelsio.com/vf"].Lists > 0
	})
	_, err := h.kubelet.Allocate(context.Background(), "chelsio.com/vf", "0000:81:01.1")
	if err == nil {
		t.Fatal("Allocate of an unhealthy device succeeded")
	}
}

func TestPreferredAllocation(t *testing.T) {
	h := start(t, deviceplugin.DeviceTree{"chelsio.com/vf": twoNUMATwoPorts("chelsio.com", "vf")})
	wait(t, h.kubelet, "listed", func(p map[string]*kubelettest.Plugin) bool {
		return p["chelsio.com/vf"] != nil && p["chelsio.com/vf"].Lists > 0
	})
	all := []string{"0000:81:01.0", "0000:81:01.1", "0000:81:01.4", "0000:81:01.5", "0000:c1:01.0", "0000:c1:01.1", "0000:c1:01.4", "0000:c1:01.5"}
	tests := []struct {
		name      string
		available []string
		must      []string
		size      int
		want      []string
	}{
		{"spread over the two ports of one NUMA node", all, nil, 2, []string{"0000:81:01.0", "0000:81:01.1"}},
		{"must-include pulls its NUMA node", all, []string{"0000:c1:01.1"}, 3, []string{"0000:c1:01.1", "0000:c1:01.0", "0000:c1:01.4"}},
		{"must-include kept, then the other port", all, []string{"0000:81:01.4"}, 2, []string{"0000:81:01.4", "0000:81:01.1"}},
		{"fewer available than asked", []string{"0000:c1:01.5"}, nil, 2, []string{"0000:c1:01.5"}},
		{"NUMA node with more free devices wins", []string{"0000:81:01.0", "0000:c1:01.0", "0000:c1:01.1"}, nil, 1, []string{"0000:c1:01.0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := h.kubelet.Preferred(context.Background(), "chelsio.com/vf", tt.available, tt.must, tt.size)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("GetPreferredAllocation mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestKubeletRestartReRegisters restarts kubelet 100 times (every socket removed,
// kubelet.sock created anew): after each, both resources register exactly once more
// and ListAndWatch gives the very devices of the first list, health and topology
// included.
func TestKubeletRestartReRegisters(t *testing.T) {
	empty := &deviceplugin.Resource{Prefix: "chelsio.com", Name: "vf-vfio", Devices: map[string]*deviceplugin.Device{}}
	h := start(t, deviceplugin.DeviceTree{"chelsio.com/vf": twoNUMATwoPorts("chelsio.com", "vf"), "chelsio.com/vf-vfio": empty})
	both := func(p map[string]*kubelettest.Plugin) bool {
		return p["chelsio.com/vf"] != nil && len(p["chelsio.com/vf"].Devices) == 8 && p["chelsio.com/vf-vfio"] != nil && p["chelsio.com/vf-vfio"].Lists > 0
	}
	wait(t, h.kubelet, "listed", both)
	first, _ := h.kubelet.Snapshot("chelsio.com/vf")
	want := devices(&first)
	const restarts = 100
	var worst time.Duration
	for i := range restarts {
		t0 := time.Now()
		if err := h.kubelet.Restart(); err != nil {
			t.Fatal(err)
		}
		wait(t, h.kubelet, fmt.Sprintf("restart %d: both resources registered again", i+1), both)
		worst = max(worst, time.Since(t0))
		for _, res := range []string{"chelsio.com/vf", "chelsio.com/vf-vfio"} {
			if n := h.kubelet.Registrations(res); n != i+2 {
				t.Fatalf("after restart %d: %s registered %d times, want %d", i+1, res, n, i+2)
			}
		}
		p, _ := h.kubelet.Snapshot("chelsio.com/vf")
		if diff := cmp.Diff(want, devices(&p)); diff != "" {
			t.Fatalf("after restart %d: ListAndWatch mismatch (-want +got):\n%s", i+1, diff)
		}
	}
	t.Logf("%d restarts; slowest re-registration took %v", restarts, worst)
}

func TestSocketRemovedReServes(t *testing.T) {
	h := start(t, deviceplugin.DeviceTree{"chelsio.com/vf": twoNUMATwoPorts("chelsio.com", "vf")})
	wait(t, h.kubelet, "listed", func(p map[string]*kubelettest.Plugin) bool {
		return p["chelsio.com/vf"] != nil && p["chelsio.com/vf"].Lists > 0
	})
	p, _ := h.kubelet.Snapshot("chelsio.com/vf")
	if err := os.Remove(filepath.Join(h.kubelet.Dir, p.Endpoint)); err != nil {
		t.Fatal(err)
	}
	registeredAgain(t, h.kubelet, "chelsio.com/vf")
	wait(t, h.kubelet, "listed again", func(p map[string]*kubelettest.Plugin) bool {
		return p["chelsio.com/vf"] != nil && len(p["chelsio.com/vf"].Devices) == 8
	})
}

func TestRegistersWhenKubeletComesLater(t *testing.T) {
	dir := shortTempDir(t)
	m := deviceplugin.NewManager(&fakeScanner{tree: deviceplugin.DeviceTree{"chelsio.com/vf": twoNUMATwoPorts("chelsio.com", "vf")}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	m.Dir, m.Interval = dir, 20*time.Millisecond
	runManager(t, m)
	<-m.Started()
	k, err := kubelettest.Start(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	wait(t, k, "registered after kubelet started", func(p map[string]*kubelettest.Plugin) bool {
		return p["chelsio.com/vf"] != nil && p["chelsio.com/vf"].Lists > 0
	})
}

// runManager runs m until the test ends.
func runManager(tb testing.TB, m *deviceplugin.Manager) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		<-done
	})
}

// registeredAgain waits up to 5 s for the plugin of resource to register a second
// time (after its socket was removed).
func registeredAgain(t *testing.T, k *kubelettest.Kubelet, resource string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for k.Registrations(resource) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("not registered again: %d registrations", k.Registrations(resource))
		}
		time.Sleep(5 * time.Millisecond)
	}
}
