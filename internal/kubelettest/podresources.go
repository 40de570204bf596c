package kubelettest

import (
	"context"
	"maps"
	"net"
	"os"
	"slices"
	"sync"

	"google.golang.org/grpc"
	podresourcesapi "k8s.io/kubelet/pkg/apis/podresources/v1"
)

// PodResources is a stand-in for kubelet's pod-resources API: a real gRPC
// PodResourcesLister on a unix socket whose List answers with the pods the test
// sets.
type PodResources struct {
	podresourcesapi.UnimplementedPodResourcesListerServer

	Socket string

	mu    sync.Mutex
	pods  []PodDevices
	lists int
	srv   *grpc.Server
}

// PodDevices is one pod as List reports it: each container's devices by resource.
type PodDevices struct {
	Namespace, Name string
	// Containers maps a container's name to the devices it holds, by resource.
	Containers map[string]map[string][]string
}

// StartPodResources serves the stand-in on socket (a stale file there is replaced).
func StartPodResources(socket string) (*PodResources, error) {
	_ = os.Remove(socket)
	l, err := net.Listen("unix", socket)
	if err != nil {
		return nil, err
	}
	p := &PodResources{Socket: socket, srv: grpc.NewServer()}
	podresourcesapi.RegisterPodResourcesListerServer(p.srv, p)
	go func() { _ = p.srv.Serve(l) }()
	return p, nil
}

// Set replaces the pods that List reports.
func (p *PodResources) Set(pods ...PodDevices) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pods = slices.Clone(pods)
}

// Lists counts the List calls answered.
func (p *PodResources) Lists() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lists
}

// Close stops serving and removes the socket.
func (p *PodResources) Close() {
	p.srv.Stop()
	_ = os.Remove(p.Socket)
}

// List is the API's List: every pod set, with its containers' devices.
func (p *PodResources) List(context.Context, *podresourcesapi.ListPodResourcesRequest) (*podresourcesapi.ListPodResourcesResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lists++
	out := &podresourcesapi.ListPodResourcesResponse{}
	for _, pod := range p.pods {
		pr := &podresourcesapi.PodResources{Namespace: pod.Namespace, Name: pod.Name}
		for _, ctr := range slices.Sorted(maps.Keys(pod.Containers)) {
			cr := &podresourcesapi.ContainerResources{Name: ctr}
			for _, res := range slices.Sorted(maps.Keys(pod.Containers[ctr])) {
				cr.Devices = append(cr.Devices, &podresourcesapi.ContainerDevices{ResourceName: res, DeviceIds: slices.Clone(pod.Containers[ctr][res])})
			}
			pr.Containers = append(pr.Containers, cr)
		}
		out.PodResources = append(out.PodResources, pr)
	}
	return out, nil
}
