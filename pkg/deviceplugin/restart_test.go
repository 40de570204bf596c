package deviceplugin_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/chelsio-k8s/chelsio-sriov/internal/kubelettest"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/deviceplugin"
)

// plugin is one run of a Manager on a device-plugin directory: one plugin process.
type plugin struct {
	m      *deviceplugin.Manager
	cancel context.CancelFunc
	done   chan struct{} // closed when Run has returned
	err    error         // Run's, once done is closed
}

// runPlugin serves tree on the stand-in's directory until stop.
func runPlugin(t *testing.T, k *kubelettest.Kubelet, tree deviceplugin.DeviceTree) *plugin {
	t.Helper()
	p := &plugin{m: deviceplugin.NewManager(&fakeScanner{tree: tree}, slog.New(slog.NewTextHandler(io.Discard, nil))), done: make(chan struct{})}
	p.m.Dir, p.m.Interval, p.m.DeviceInfoDir = k.Dir, 20*time.Millisecond, t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() {
		p.err = p.m.Run(ctx)
		close(p.done)
	}()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop ends the run and waits for it; it is idempotent.
func (p *plugin) stop(t *testing.T) {
	t.Helper()
	p.cancel()
	select {
	case <-p.done:
		if p.err != nil {
			t.Errorf("Run: %v", p.err)
			p.err = nil
		}
	case <-time.After(10 * time.Second):
		t.Error("Run did not return")
	}
}

// running reports whether Run has not returned.
func (p *plugin) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// metric returns the line of /metrics that starts with series, "" if none.
func (p *plugin) metric(t *testing.T, series string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	p.m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", http.NoBody))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	for line := range strings.SplitSeq(rec.Body.String(), "\n") {
		if strings.HasPrefix(line, series+" ") {
			return line
		}
	}
	return ""
}

// staleSocket leaves a socket file at path with nobody listening, as a plugin
// killed with SIGKILL leaves its socket.
func staleSocket(t *testing.T, path string) {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestPluginRestartWhilePodsHoldDevices stops the plugin while pods hold devices,
// leaves its sockets behind as a crash does, and starts a new one: it advertises
// the same resources and device IDs; kubelet's ledger (kept by kubelet, not by the
// plugin) still says who holds what, so only free devices are given out and the
// plugin is never asked for a held one; asked directly for a held device twice, the
// plugin, which keeps no record of allocations, answers both times and goes on.
func TestPluginRestartWhilePodsHoldDevices(t *testing.T) {
	k, err := kubelettest.Start(shortTempDir(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	tree := func() deviceplugin.DeviceTree {
		return deviceplugin.DeviceTree{
			"chelsio.com/vf":      twoNUMATwoPorts("chelsio.com", "vf"),
			"chelsio.com/vf-vfio": {Prefix: "chelsio.com", Name: "vf-vfio", Devices: map[string]*deviceplugin.Device{}},
		}
	}
	const res = "chelsio.com/vf"
	// Both resources served by a live plugin, registered n times each.
	registered := func(n int) {
		t.Helper()
		wait(t, k, "both resources registered and listed", func(p map[string]*kubelettest.Plugin) bool {
			v, vfio := p[res], p["chelsio.com/vf-vfio"]
			return v != nil && !v.Ended && len(v.Devices) == 8 && vfio != nil && !vfio.Ended && vfio.Lists > 0
		})
		for _, r := range []string{res, "chelsio.com/vf-vfio"} {
			if got := k.Registrations(r); got != n {
				t.Errorf("%s registered %d times, want %d", r, got, n)
			}
		}
	}
	first := runPlugin(t, k, tree())
	registered(1)
	before, _ := k.Snapshot(res)
	sockets := map[string]string{}
	for _, r := range []string{res, "chelsio.com/vf-vfio"} {
		p, _ := k.Snapshot(r)
		sockets[r] = p.Endpoint
	}

	ctx := context.Background()
	a, err := k.Admit(ctx, "pod-a", "app", res, 2)
	if err != nil {
		t.Fatal(err)
	}
	b, err := k.Admit(ctx, "pod-b", "app", res, 1)
	if err != nil {
		t.Fatal(err)
	}
	held := append(slices.Clone(a.IDs), b.IDs...)
	ledger := k.Assignments()

	first.stop(t)
	for _, sock := range sockets {
		staleSocket(t, filepath.Join(k.Dir, sock))
	}
	wait(t, k, "kubelet sees the plugin gone", func(p map[string]*kubelettest.Plugin) bool { return p[res] != nil && p[res].Ended })
	if _, err := k.Admit(ctx, "pod-c", "app", res, 1); err == nil || !strings.Contains(err.Error(), "no healthy devices present") {
		t.Errorf("Admit while no plugin runs: %v, want kubelet's refusal: no healthy devices present", err)
	}

	second := runPlugin(t, k, tree())
	registered(2)
	after, _ := k.Snapshot(res)
	if diff := cmp.Diff(devices(&before), devices(&after)); diff != "" {
		t.Errorf("ListAndWatch after the plugin restart mismatch (-want +got):\n%s", diff)
	}
	for r, sock := range sockets {
		if p, _ := k.Snapshot(r); p.Endpoint != sock {
			t.Errorf("%s registered on %s, was %s", r, p.Endpoint, sock)
		}
	}
	if diff := cmp.Diff(ledger, k.Assignments(), sameResponse); diff != "" {
		t.Errorf("kubelet's ledger after the plugin restart mismatch (-want +got):\n%s", diff)
	}

	// Every free device, and no more.
	c, err := k.Admit(ctx, "pod-c", "app", res, 5)
	if err != nil {
		t.Fatalf("Admit of the 5 free devices: %v", err)
	}
	for _, id := range c.IDs {
		if slices.Contains(held, id) {
			t.Errorf("pod-c got %s, which %s holds", id, k.Holders(res)[id])
		}
	}
	if _, err := k.Admit(ctx, "pod-d", "app", res, 1); err == nil || !strings.Contains(err.Error(), "Requested: 1, Available: 0") {
		t.Errorf("Admit with every device held: %v, want kubelet's refusal", err)
	}
	if _, err := k.AdmitDevices(ctx, "pod-d", "app", res, held[0]); err == nil || !strings.Contains(err.Error(), `pod "pod-a"`) {
		t.Errorf("AdmitDevices of %s, held by pod-a: %v, want kubelet's refusal naming pod-a", held[0], err)
	}
	// The refusals never reached the plugin: it allocated pod-c's 5 devices only.
	if got := second.metric(t, `chelsio_sriov_dp_allocated_devices_total{resource="chelsio.com/vf"}`); !strings.HasSuffix(got, " 5") {
		t.Errorf("the restarted plugin's allocations: %q, want 5", got)
	}

	// Asked directly, twice, for a device that a pod holds.
	r1, err1 := k.Allocate(ctx, res, held[0])
	r2, err2 := k.Allocate(ctx, res, held[0])
	if err1 != nil || err2 != nil {
		t.Fatalf("Allocate of %s twice: %v, %v", held[0], err1, err2)
	}
	if diff := cmp.Diff(r1.Envs, r2.Envs); diff != "" {
		t.Errorf("the two answers differ (-first +second):\n%s", diff)
	}
	if !second.running() {
		t.Fatal("the plugin stopped after a device was allocated twice")
	}
	if _, err := k.Preferred(ctx, res, []string{held[0]}, nil, 1); err != nil {
		t.Errorf("GetPreferredAllocation after the double Allocate: %v", err)
	}
	if p, _ := k.Snapshot(res); p.Ended || len(p.Devices) != 8 {
		t.Errorf("after the double Allocate kubelet's stream ended=%v with %d devices, want it open with 8", p.Ended, len(p.Devices))
	}

	// pod-a gone: its devices are given out again.
	if err := k.Release("pod-a"); err != nil {
		t.Fatal(err)
	}
	d, err := k.Admit(ctx, "pod-d", "app", res, 2)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sortedCopy(a.IDs), sortedCopy(d.IDs)); diff != "" {
		t.Errorf("pod-d's devices, once pod-a is gone, mismatch (-want +got):\n%s", diff)
	}
}

// sameResponse compares Allocate answers by what a container gets from them.
var sameResponse = cmp.Comparer(func(a, b *pluginapi.ContainerAllocateResponse) bool {
	paths := func(r *pluginapi.ContainerAllocateResponse) []string {
		var out []string
		for _, d := range r.GetDevices() {
			out = append(out, d.ContainerPath+"="+d.HostPath+":"+d.Permissions)
		}
		for _, c := range r.GetCdiDevices() {
			out = append(out, "cdi:"+c.Name)
		}
		return out
	}
	return cmp.Equal(a.GetEnvs(), b.GetEnvs()) && cmp.Equal(a.GetAnnotations(), b.GetAnnotations()) && slices.Equal(paths(a), paths(b))
})

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

// shortTempDir makes a directory for unix sockets: their paths are limited to 108
// bytes, which t.TempDir() can exceed.
func shortTempDir(t *testing.T) string {
	t.Helper()
	return kubelettest.ShortDir(t, "dp-")
}
