// Package podresources asks kubelet which pods run on the node and which devices
// each holds, through kubelet's pod-resources API (v1 List) on its unix socket.
package podresources

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	podresourcesapi "k8s.io/kubelet/pkg/apis/podresources/v1"
)

// DefaultSocket is kubelet's pod-resources socket.
const DefaultSocket = "/var/lib/kubelet/pod-resources/kubelet.sock"

// maxMessage bounds List's answer: kubelet's own client takes 16 MiB, a node's
// worth of pods with their devices.
const maxMessage = 16 << 20

// Pod is one pod kubelet runs, and the devices its containers hold.
type Pod struct {
	Namespace, Name string
	// Devices maps a resource name to the IDs of its devices that the pod's
	// containers hold.
	Devices map[string][]string
}

// Key is "<namespace>/<name>".
func (p Pod) Key() string { return p.Namespace + "/" + p.Name }

// Client lists pods through the API on Socket.
type Client struct {
	Socket  string
	Timeout time.Duration // of one List; 0 is 5 s
}

// List returns every pod kubelet has, with its devices.
func (c Client) List(ctx context.Context) ([]Pod, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+c.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessage)))
	if err != nil {
		return nil, fmt.Errorf("kubelet pod-resources API at %s: %w", c.Socket, err)
	}
	defer func() { _ = conn.Close() }()
	resp, err := podresourcesapi.NewPodResourcesListerClient(conn).List(ctx, &podresourcesapi.ListPodResourcesRequest{})
	if err != nil {
		st := status.Convert(err)
		return nil, fmt.Errorf("kubelet pod-resources API at %s: %s: %s", c.Socket, st.Code(), st.Message())
	}
	out := make([]Pod, 0, len(resp.GetPodResources()))
	for _, pr := range resp.GetPodResources() {
		p := Pod{Namespace: pr.GetNamespace(), Name: pr.GetName(), Devices: map[string][]string{}}
		for _, ctr := range pr.GetContainers() {
			for _, d := range ctr.GetDevices() {
				p.Devices[d.GetResourceName()] = append(p.Devices[d.GetResourceName()], d.GetDeviceIds()...)
			}
		}
		out = append(out, p)
	}
	return out, nil
}
