package kubelettest_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/chelsio-k8s/chelsio-sriov/internal/kubelettest"
)

const resource = "example.com/dev"

// recorder is a device plugin that lists what the test sets, prefers the highest
// IDs, and records every Allocate; it refuses IDs listed in refuse.
type recorder struct {
	pluginapi.UnimplementedDevicePluginServer

	mu       sync.Mutex
	devices  []*pluginapi.Device
	allocs   [][]string
	refuse   map[string]bool
	srv      *grpc.Server
	endpoint string
}

func (r *recorder) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{GetPreferredAllocationAvailable: true}, nil
}

func (r *recorder) ListAndWatch(_ *pluginapi.Empty, s grpc.ServerStreamingServer[pluginapi.ListAndWatchResponse]) error {
	r.mu.Lock()
	devs := r.devices
	r.mu.Unlock()
	if err := s.Send(&pluginapi.ListAndWatchResponse{Devices: devs}); err != nil {
		return err
	}
	<-s.Context().Done()
	return nil
}

func (r *recorder) GetPreferredAllocation(_ context.Context, req *pluginapi.PreferredAllocationRequest) (*pluginapi.PreferredAllocationResponse, error) {
	out := &pluginapi.PreferredAllocationResponse{}
	for _, cr := range req.ContainerRequests {
		ids := slices.Clone(cr.AvailableDeviceIDs)
		slices.Sort(ids)
		slices.Reverse(ids)
		out.ContainerResponses = append(out.ContainerResponses, &pluginapi.ContainerPreferredAllocationResponse{DeviceIDs: ids[:min(len(ids), int(cr.AllocationSize))]})
	}
	return out, nil
}

func (r *recorder) Allocate(_ context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := &pluginapi.AllocateResponse{}
	for _, cr := range req.ContainerRequests {
		r.allocs = append(r.allocs, slices.Clone(cr.DevicesIds))
		for _, id := range cr.DevicesIds {
			if r.refuse[id] {
				return nil, status.Errorf(codes.FailedPrecondition, "device %s refused", id)
			}
		}
		out.ContainerResponses = append(out.ContainerResponses, &pluginapi.ContainerAllocateResponse{Envs: map[string]string{"DEVS": strings.Join(cr.DevicesIds, ",")}})
	}
	return out, nil
}

func (r *recorder) calls() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.allocs)
}

// serve starts the plugin on a socket of k's directory and registers it.
func serve(t *testing.T, k *kubelettest.Kubelet, r *recorder) {
	t.Helper()
	r.endpoint = "recorder.sock"
	sock := filepath.Join(k.Dir, r.endpoint)
	_ = os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	r.srv = grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(r.srv, r)
	go func() { _ = r.srv.Serve(l) }()
	t.Cleanup(r.srv.Stop)
	conn, err := grpc.NewClient("unix://"+k.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{Version: pluginapi.Version, Endpoint: r.endpoint, ResourceName: resource}); err != nil {
		t.Fatalf("Register: %v", err)
	}
	waitFor(t, k, "the plugin's list", func(p map[string]*kubelettest.Plugin) bool {
		return p[resource] != nil && p[resource].Lists > 0 && !p[resource].Ended
	})
}

func waitFor(t *testing.T, k *kubelettest.Kubelet, what string, cond func(map[string]*kubelettest.Plugin) bool) {
	t.Helper()
	k.MustWait(t, what, 5*time.Second, cond)
}

// shortDir is a directory for unix sockets, whose paths are limited to 108 bytes.
func shortDir(t *testing.T) string {
	t.Helper()
	return kubelettest.ShortDir(t, "kt-")
}

// startServing is start, with r registered and served.
func startServing(t *testing.T, r *recorder) *kubelettest.Kubelet {
	t.Helper()
	k := start(t)
	serve(t, k, r)
	return k
}

// mustAdmit admits n devices of resource for container "c" of pod, which must
// succeed.
func mustAdmit(t *testing.T, k *kubelettest.Kubelet, pod string, n int) kubelettest.Assignment {
	t.Helper()
	a, err := k.Admit(context.Background(), pod, "c", resource, n)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func start(t *testing.T) *kubelettest.Kubelet {
	t.Helper()
	return kubelettest.StartTest(t, "kt-")
}

// fourDevices is d0-d3, d2 unhealthy.
func fourDevices() []*pluginapi.Device {
	return []*pluginapi.Device{
		{ID: "d0", Health: pluginapi.Healthy},
		{ID: "d1", Health: pluginapi.Healthy},
		{ID: "d2", Health: pluginapi.Unhealthy},
		{ID: "d3", Health: pluginapi.Healthy},
	}
}

// wantErr fails the test unless err is an error that contains every one of want.
func wantErr(t *testing.T, what string, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want one with %q", what, want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: error %q lacks %q", what, err, w)
		}
	}
}

func TestAdmitTakesOnlyHealthyFreeDevices(t *testing.T) {
	r := &recorder{devices: fourDevices()}
	k := startServing(t, r)
	ctx := context.Background()

	a := mustAdmit(t, k, "pod-a", 2)
	// The plugin prefers the highest IDs; d2 is unhealthy, so d3 and d1.
	if diff := cmp.Diff([]string{"d3", "d1"}, a.IDs); diff != "" {
		t.Errorf("pod-a's devices mismatch (-want +got):\n%s", diff)
	}
	if a.Response.Envs["DEVS"] != "d3,d1" {
		t.Errorf("pod-a's response = %v", a.Response.Envs)
	}
	b := mustAdmit(t, k, "pod-b", 1)
	if diff := cmp.Diff([]string{"d0"}, b.IDs); diff != "" {
		t.Errorf("pod-b's devices mismatch (-want +got):\n%s", diff)
	}

	// Nothing healthy is free: refused before the plugin is asked.
	_, err := k.Admit(ctx, "pod-c", "c", resource, 1)
	wantErr(t, "a third pod", err, "requested number of devices unavailable for "+resource, "Requested: 1, Available: 0")
	_, err = k.AdmitDevices(ctx, "pod-c", "c", resource, "d1")
	wantErr(t, "a held device", err, "d1", `pod "pod-a" container "c"`)
	_, err = k.AdmitDevices(ctx, "pod-c", "c", resource, "d2")
	wantErr(t, "an unhealthy device", err, "d2", "not healthy")
	_, err = k.AdmitDevices(ctx, "pod-c", "c", resource, "d9")
	wantErr(t, "an unknown device", err, "d9", "not registered")
	_, err = k.Admit(ctx, "pod-c", "c", "example.com/other", 1)
	wantErr(t, "an unknown resource", err, "cannot allocate unregistered device example.com/other")

	// A container that starts again keeps its devices; the plugin is not asked.
	again := mustAdmit(t, k, "pod-a", 2)
	if diff := cmp.Diff(a.IDs, again.IDs); diff != "" {
		t.Errorf("pod-a admitted again mismatch (-want +got):\n%s", diff)
	}
	_, err = k.Admit(ctx, "pod-a", "c", resource, 1)
	wantErr(t, "a changed request", err, "changed request", "from 2 to 1")

	if diff := cmp.Diff([][]string{{"d3", "d1"}, {"d0"}}, r.calls()); diff != "" {
		t.Errorf("Allocate calls mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"d0": `pod "pod-b" container "c"`, "d1": `pod "pod-a" container "c"`, "d3": `pod "pod-a" container "c"`}, k.Holders(resource)); diff != "" {
		t.Errorf("Holders mismatch (-want +got):\n%s", diff)
	}

	// pod-a gone: its devices are free again.
	if err := k.Release("pod-a"); err != nil {
		t.Fatal(err)
	}
	if err := k.Release("pod-a"); err == nil {
		t.Error("Release of a pod that holds nothing: no error")
	}
	c, err := k.AdmitDevices(ctx, "pod-c", "c", resource, "d1")
	if err != nil {
		t.Fatalf("AdmitDevices of a released device: %v", err)
	}
	if diff := cmp.Diff([]string{"d1"}, c.IDs); diff != "" {
		t.Errorf("pod-c's devices mismatch (-want +got):\n%s", diff)
	}
}

func TestAdmitRefusedByThePluginHoldsNothing(t *testing.T) {
	r := &recorder{devices: fourDevices(), refuse: map[string]bool{"d3": true}}
	k := startServing(t, r)
	_, err := k.AdmitDevices(context.Background(), "pod-a", "c", resource, "d3")
	if status.Code(errors.Unwrap(err)) != codes.FailedPrecondition {
		t.Fatalf("AdmitDevices of a device the plugin refuses: %v, want its FailedPrecondition", err)
	}
	if got := k.Assignments(); len(got) != 0 {
		t.Errorf("ledger after a refused Allocate = %v, want empty", got)
	}
	if _, err := k.Admit(context.Background(), "pod-b", "c", resource, 3); err == nil || len(r.calls()) != 2 {
		t.Errorf("Admit of 3 after a refused d3: %v, %d Allocate calls; want the refusal again, 2 calls", err, len(r.calls()))
	}
}

// TestLedgerOutlivesPluginRestart: while the plugin is down nothing is given out;
// once it registers again with the same devices, the pods keep theirs and only
// free devices are given out.
func TestLedgerOutlivesPluginRestart(t *testing.T) {
	r := &recorder{devices: fourDevices()}
	k := startServing(t, r)
	ctx := context.Background()
	a := mustAdmit(t, k, "pod-a", 2)
	r.srv.Stop()
	waitFor(t, k, "the stream ended", func(p map[string]*kubelettest.Plugin) bool { return p[resource] != nil && p[resource].Ended })
	_, err := k.Admit(ctx, "pod-b", "c", resource, 1)
	wantErr(t, "admit while the plugin is down", err, "no healthy devices present; cannot allocate unhealthy devices "+resource)
	_, err = k.Admit(ctx, "pod-a", "c", resource, 2)
	wantErr(t, "pod-a's container starts again while the plugin is down", err, "no healthy devices present")

	r2 := &recorder{devices: fourDevices()}
	serve(t, k, r2)
	again := mustAdmit(t, k, "pod-a", 2)
	if diff := cmp.Diff(a.IDs, again.IDs); diff != "" {
		t.Errorf("pod-a after the plugin restart mismatch (-want +got):\n%s", diff)
	}
	_, err = k.Admit(ctx, "pod-b", "c", resource, 2)
	wantErr(t, "two more devices", err, "Requested: 2, Available: 1")
	b := mustAdmit(t, k, "pod-b", 1)
	if slices.Contains(a.IDs, b.IDs[0]) {
		t.Errorf("pod-b got %v, held by pod-a", b.IDs)
	}
	if diff := cmp.Diff([][]string{b.IDs}, r2.calls()); diff != "" {
		t.Errorf("Allocate calls of the restarted plugin mismatch (-want +got):\n%s", diff)
	}
}

// TestLedgerOutlivesKubeletRestart: the ledger is read back from the checkpoint
// file, by a restart and by a new stand-in on the same directory.
func TestLedgerOutlivesKubeletRestart(t *testing.T) {
	r := &recorder{devices: fourDevices()}
	k := startServing(t, r)
	ctx := context.Background()
	if _, err := k.Admit(ctx, "pod-a", "c", resource, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Admit(ctx, "pod-b", "c", resource, 1); err != nil {
		t.Fatal(err)
	}
	want := k.Assignments()
	if err := k.Restart(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, k.Assignments(), cmp.Comparer(func(a, b *pluginapi.ContainerAllocateResponse) bool { return cmp.Equal(a.Envs, b.Envs) })); diff != "" {
		t.Errorf("ledger after a restart mismatch (-want +got):\n%s", diff)
	}
	_, err := k.Admit(ctx, "pod-c", "c", resource, 1)
	wantErr(t, "admit before the plugin registers again", err, "no healthy devices present")

	dir2 := shortDir(t)
	b, err := os.ReadFile(filepath.Join(k.Dir, kubelettest.CheckpointFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir2, kubelettest.CheckpointFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	k2, err := kubelettest.Start(dir2)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, k2.Assignments(), cmp.Comparer(func(a, b *pluginapi.ContainerAllocateResponse) bool { return cmp.Equal(a.Envs, b.Envs) })); diff != "" {
		t.Errorf("ledger of a new stand-in on the checkpoint mismatch (-want +got):\n%s", diff)
	}
	k2.Close()

	if err := os.WriteFile(filepath.Join(dir2, kubelettest.CheckpointFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := kubelettest.Start(dir2); err == nil || !strings.Contains(err.Error(), kubelettest.CheckpointFile) {
		t.Errorf("Start on a corrupt checkpoint: %v, want an error naming the file", err)
	}
}
