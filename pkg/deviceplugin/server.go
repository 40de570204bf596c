package deviceplugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// resourceServer serves one resource on its own socket.
type resourceServer struct {
	pluginapi.UnimplementedDevicePluginServer

	m      *Manager
	name   string // full resource name
	socket string // path

	mu       sync.Mutex
	res      *Resource
	watchers map[chan *Resource]struct{}
	srv      *grpc.Server
	stopped  chan struct{} // closed when Serve returns
}

// socketName is the socket's file name in the device-plugin directory.
func socketName(fullName string) string {
	r := strings.NewReplacer("/", "_", ".", "_")
	return "chelsio-sriov-" + r.Replace(fullName) + ".sock"
}

func newResourceServer(m *Manager, res *Resource) *resourceServer {
	return &resourceServer{m: m, name: res.FullName(), socket: filepath.Join(m.Dir, socketName(res.FullName())), res: res, watchers: map[chan *Resource]struct{}{}}
}

// start listens on the socket (replacing a stale one), which only the plugin's
// user can connect to, and serves.
func (s *resourceServer) start() error {
	if err := os.Remove(s.socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale socket: %w", err)
	}
	l, err := listenUnix(s.socket)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.socket, err)
	}
	srv := grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(srv, s)
	stopped := make(chan struct{})
	s.mu.Lock()
	s.srv, s.stopped = srv, stopped
	s.mu.Unlock()
	go func() {
		defer close(stopped)
		if err := srv.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			s.m.Log.Error("device plugin server stopped", "resource", s.name, "err", err)
		}
	}()
	return nil
}

// stop ends the server and every ListAndWatch stream; it is idempotent.
func (s *resourceServer) stop() {
	s.mu.Lock()
	srv, stopped := s.srv, s.stopped
	s.srv = nil
	for ch := range s.watchers {
		close(ch)
		delete(s.watchers, ch)
	}
	s.mu.Unlock()
	if srv == nil {
		return
	}
	srv.Stop()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
	}
}

// register tells kubelet about the resource.
func (s *resourceServer) register(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+s.m.KubeletSocket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("connect to kubelet at %s: %w", s.m.KubeletSocket, err)
	}
	defer func() { _ = conn.Close() }()
	_, err = pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{
		Version:      pluginapi.Version,
		Endpoint:     filepath.Base(s.socket),
		ResourceName: s.name,
		Options:      &pluginapi.DevicePluginOptions{GetPreferredAllocationAvailable: true},
	})
	if err != nil {
		return fmt.Errorf("register %s with kubelet at %s: %w", s.name, s.m.KubeletSocket, err)
	}
	return nil
}

// update replaces the resource's devices and tells every stream.
func (s *resourceServer) update(res *Resource) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.res = res
	for ch := range s.watchers {
		select {
		case ch <- res:
		default:
			// The stream has not sent the previous list yet: replace it.
			select {
			case <-ch:
			default:
			}
			ch <- res
		}
	}
}

func (s *resourceServer) current() *Resource {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.res
}

// GetDevicePluginOptions announces GetPreferredAllocation.
func (s *resourceServer) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{GetPreferredAllocationAvailable: true}, nil
}

// ListAndWatch sends the full device list at once and again on every change.
func (s *resourceServer) ListAndWatch(_ *pluginapi.Empty, stream grpc.ServerStreamingServer[pluginapi.ListAndWatchResponse]) error {
	ch := make(chan *Resource, 1)
	s.mu.Lock()
	res := s.res
	s.watchers[ch] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.watchers, ch)
		s.mu.Unlock()
	}()
	s.m.Log.Info("kubelet watches the devices", "resource", s.name, "devices", len(res.Devices))
	for {
		if err := stream.Send(listResponse(res)); err != nil {
			return err
		}
		s.m.metrics.observeList(s.name)
		select {
		case <-stream.Context().Done():
			return nil
		case r, ok := <-ch:
			if !ok {
				return nil // server stopping
			}
			res = r
		}
	}
}

func listResponse(res *Resource) *pluginapi.ListAndWatchResponse {
	out := &pluginapi.ListAndWatchResponse{}
	for _, id := range res.IDs() {
		d := res.Devices[id]
		pd := &pluginapi.Device{ID: id, Health: pluginapi.Healthy}
		if !d.Healthy {
			pd.Health = pluginapi.Unhealthy
		}
		if d.NUMANode >= 0 {
			pd.Topology = &pluginapi.TopologyInfo{Nodes: []*pluginapi.NUMANode{{ID: int64(d.NUMANode)}}}
		}
		out.Devices = append(out.Devices, pd)
	}
	return out
}

// PreStartContainer is not required (GetDevicePluginOptions says so).
func (s *resourceServer) PreStartContainer(context.Context, *pluginapi.PreStartContainerRequest) (*pluginapi.PreStartContainerResponse, error) {
	return &pluginapi.PreStartContainerResponse{}, nil
}

// GetPreferredAllocation chooses, for each container request, which devices to take.
func (s *resourceServer) GetPreferredAllocation(_ context.Context, req *pluginapi.PreferredAllocationRequest) (*pluginapi.PreferredAllocationResponse, error) {
	res := s.current()
	out := &pluginapi.PreferredAllocationResponse{}
	for _, cr := range req.ContainerRequests {
		ids := preferred(res, cr.AvailableDeviceIDs, cr.MustIncludeDeviceIDs, int(cr.AllocationSize), s.m.Policy)
		out.ContainerResponses = append(out.ContainerResponses, &pluginapi.ContainerPreferredAllocationResponse{DeviceIDs: ids})
	}
	return out, nil
}

// Allocate gives each container its devices: the PCIDEVICE_ environment, vfio device
// nodes and CDI names for user-space VFs, and the device-info file for Multus. It
// refuses unknown and unhealthy devices.
func (s *resourceServer) Allocate(_ context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	res := s.current()
	out := &pluginapi.AllocateResponse{}
	for _, cr := range req.ContainerRequests {
		var devs []*Device
		for _, id := range cr.DevicesIds {
			d, ok := res.Devices[id]
			if !ok {
				return nil, status.Errorf(codes.NotFound, "%s: no device %q", s.name, id)
			}
			if !d.Healthy {
				return nil, status.Errorf(codes.FailedPrecondition, "%s: device %s is unhealthy: %s", s.name, id, d.Reason)
			}
			devs = append(devs, d)
		}
		car, err := s.m.containerResponse(res, devs)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "%s: %v", s.name, err)
		}
		out.ContainerResponses = append(out.ContainerResponses, car)
		s.m.metrics.observeAllocate(s.name, len(devs))
		s.m.Log.Info("allocated", "resource", s.name, "devices", cr.DevicesIds)
	}
	return out, nil
}
