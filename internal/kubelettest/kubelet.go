// Package kubelettest is a stand-in for kubelet's device manager, for tests and the
// demo: a real gRPC Registration server on <dir>/kubelet.sock that, like kubelet,
// dials back each plugin that registers, reads its options, follows ListAndWatch,
// and calls GetPreferredAllocation and Allocate on demand. Restart behaves as a
// kubelet restart: every socket in the directory is removed and kubelet.sock
// created anew.
//
// Like kubelet, it keeps a ledger of which devices it has given to which container
// (ledger.go): Admit picks only healthy devices that no container holds, asks the
// plugin to Allocate them, and records the answer in a checkpoint file, so that the
// ledger outlives plugin restarts and kubelet restarts alike.
package kubelettest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// Kubelet is the stand-in.
type Kubelet struct {
	pluginapi.UnimplementedRegistrationServer

	Dir    string
	Socket string

	mu      sync.Mutex
	srv     *grpc.Server
	plugins map[string]*Plugin
	regs    map[string]int
	changed chan struct{}
	ledger  map[slot]*Assignment // what containers hold; see ledger.go
	known   map[string]bool      // resources ever registered (checkpointed)
	admitMu sync.Mutex           // kubelet admits one pod at a time
	ckptMu  sync.Mutex           // one checkpoint write at a time
}

// Plugin is what the stand-in knows of one registered resource.
type Plugin struct {
	Resource string
	Endpoint string
	Options  *pluginapi.DevicePluginOptions
	Devices  []*pluginapi.Device // the latest ListAndWatch list
	Lists    int                 // lists received
	First    time.Time           // when the first list arrived
	// Ended is set when the ListAndWatch stream has ended (the plugin stopped or
	// died). As kubelet does, the stand-in then counts none of the resource's
	// devices as healthy until the plugin registers again; Devices keeps the last
	// list.
	Ended  bool
	conn   *grpc.ClientConn
	client pluginapi.DevicePluginClient
	cancel context.CancelFunc
}

// Start serves kubelet.sock in dir. The ledger starts from dir's checkpoint file,
// if there is one.
func Start(dir string) (*Kubelet, error) {
	k := &Kubelet{Dir: dir, Socket: filepath.Join(dir, "kubelet.sock"), plugins: map[string]*Plugin{}, regs: map[string]int{}, changed: make(chan struct{})}
	if err := k.readCheckpoint(); err != nil {
		return nil, err
	}
	if err := k.listen(); err != nil {
		return nil, err
	}
	return k, nil
}

func (k *Kubelet) listen() error {
	_ = os.Remove(k.Socket)
	l, err := net.Listen("unix", k.Socket)
	if err != nil {
		return err
	}
	srv := grpc.NewServer()
	pluginapi.RegisterRegistrationServer(srv, k)
	k.mu.Lock()
	k.srv = srv
	k.mu.Unlock()
	go func() { _ = srv.Serve(l) }()
	return nil
}

// Register is kubelet's Registration.Register: it dials the plugin back.
func (k *Kubelet) Register(_ context.Context, req *pluginapi.RegisterRequest) (*pluginapi.Empty, error) {
	if req.Version != pluginapi.Version {
		return nil, fmt.Errorf("unsupported API version %q", req.Version)
	}
	conn, err := grpc.NewClient("unix://"+filepath.Join(k.Dir, req.Endpoint), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	client := pluginapi.NewDevicePluginClient(conn)
	ctx, cancel := context.WithCancel(context.Background())
	opts, err := client.GetDevicePluginOptions(ctx, &pluginapi.Empty{})
	if err != nil {
		cancel()
		_ = conn.Close()
		return nil, fmt.Errorf("GetDevicePluginOptions: %w", err)
	}
	p := &Plugin{Resource: req.ResourceName, Endpoint: req.Endpoint, Options: opts, conn: conn, client: client, cancel: cancel}
	k.mu.Lock()
	if old := k.plugins[req.ResourceName]; old != nil {
		old.cancel()
		_ = old.conn.Close()
	}
	k.plugins[req.ResourceName] = p
	k.regs[req.ResourceName]++
	newResource := !k.known[req.ResourceName]
	k.known[req.ResourceName] = true
	k.signalLocked()
	k.mu.Unlock()
	if newResource {
		if err := k.writeCheckpoint(); err != nil {
			return nil, err
		}
	}
	stream, err := client.ListAndWatch(ctx, &pluginapi.Empty{})
	if err != nil {
		return nil, fmt.Errorf("ListAndWatch: %w", err)
	}
	go func() {
		for {
			resp, err := stream.Recv()
			k.mu.Lock()
			if k.plugins[req.ResourceName] != p {
				k.mu.Unlock()
				return
			}
			if err != nil {
				p.Ended = true
				k.signalLocked()
				k.mu.Unlock()
				return
			}
			p.Devices = resp.Devices
			if p.Lists == 0 {
				p.First = time.Now()
			}
			p.Lists++
			k.signalLocked()
			k.mu.Unlock()
		}
	}()
	return &pluginapi.Empty{}, nil
}

func (k *Kubelet) signalLocked() {
	close(k.changed)
	k.changed = make(chan struct{})
}

// Wait blocks until cond, called under the stand-in's lock after each change,
// holds, or ctx ends.
func (k *Kubelet) Wait(ctx context.Context, cond func(plugins map[string]*Plugin) bool) error {
	for {
		k.mu.Lock()
		ok := cond(k.plugins)
		ch := k.changed
		k.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Snapshot returns a copy of what the stand-in knows of a resource.
func (k *Kubelet) Snapshot(resource string) (Plugin, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	p, ok := k.plugins[resource]
	if !ok {
		return Plugin{}, false
	}
	return Plugin{Resource: p.Resource, Endpoint: p.Endpoint, Options: p.Options, Devices: append([]*pluginapi.Device(nil), p.Devices...), Lists: p.Lists, First: p.First, Ended: p.Ended}, true
}

// Registrations counts Register calls for a resource.
func (k *Kubelet) Registrations(resource string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.regs[resource]
}

func (k *Kubelet) client(resource string) (pluginapi.DevicePluginClient, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	p, ok := k.plugins[resource]
	if !ok {
		return nil, fmt.Errorf("resource %s is not registered", resource)
	}
	return p.client, nil
}

// Allocate asks the plugin for one container's devices, directly: it neither
// consults nor changes the ledger. Kubelet itself never sends an ID that a container
// holds, nor an unknown or unhealthy one; tests use Allocate to see how the plugin
// answers anyway. Admit is what kubelet does.
func (k *Kubelet) Allocate(ctx context.Context, resource string, ids ...string) (*pluginapi.ContainerAllocateResponse, error) {
	c, err := k.client(resource)
	if err != nil {
		return nil, err
	}
	r, err := c.Allocate(ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: ids}}})
	if err != nil {
		return nil, err
	}
	if len(r.ContainerResponses) != 1 {
		return nil, errors.New("allocate: not one container response")
	}
	return r.ContainerResponses[0], nil
}

// Preferred asks the plugin which devices to take.
func (k *Kubelet) Preferred(ctx context.Context, resource string, available, must []string, size int) ([]string, error) {
	c, err := k.client(resource)
	if err != nil {
		return nil, err
	}
	r, err := c.GetPreferredAllocation(ctx, &pluginapi.PreferredAllocationRequest{ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{{
		AvailableDeviceIDs: available, MustIncludeDeviceIDs: must, AllocationSize: int32(size),
	}}})
	if err != nil {
		return nil, err
	}
	if len(r.ContainerResponses) != 1 {
		return nil, errors.New("GetPreferredAllocation: not one container response")
	}
	return r.ContainerResponses[0].DeviceIDs, nil
}

// Restart behaves as kubelet restarting: it drops every plugin, removes every
// socket of the directory (the plugins' too), reads the ledger back from its
// checkpoint file, and serves a new kubelet.sock.
func (k *Kubelet) Restart() error {
	k.stopServer()
	entries, err := os.ReadDir(k.Dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Type()&os.ModeSocket != 0 {
			if err := os.Remove(filepath.Join(k.Dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	if err := k.readCheckpoint(); err != nil {
		return err
	}
	return k.listen()
}

func (k *Kubelet) stopServer() {
	k.mu.Lock()
	srv := k.srv
	plugins := k.plugins
	k.plugins = map[string]*Plugin{}
	k.signalLocked()
	k.mu.Unlock()
	for _, p := range plugins {
		p.cancel()
		_ = p.conn.Close()
	}
	if srv != nil {
		srv.Stop()
	}
}

// Close stops the stand-in.
func (k *Kubelet) Close() {
	k.stopServer()
	_ = os.Remove(k.Socket)
}
