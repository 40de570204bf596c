package podresources_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chelsio-k8s/chelsio-sriov/internal/kubelettest"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/podresources"
)

func shortSocket(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pr-") // unix socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "kubelet.sock")
}

// TestList: every pod kubelet reports, with the devices of all its containers
// gathered by resource.
func TestList(t *testing.T) {
	socket := shortSocket(t)
	pr, err := kubelettest.StartPodResources(socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pr.Close)
	pr.Set(
		kubelettest.PodDevices{Namespace: "default", Name: "a", Containers: map[string]map[string][]string{
			"app":     {"chelsio.com/vf": {"0000:81:01.0"}},
			"sidecar": {"chelsio.com/vf": {"0000:81:01.1"}, "other.com/x": {"x1"}},
		}},
		kubelettest.PodDevices{Namespace: "kube-system", Name: "b"},
	)
	got, err := podresources.Client{Socket: socket}.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []podresources.Pod{
		{Namespace: "default", Name: "a", Devices: map[string][]string{"chelsio.com/vf": {"0000:81:01.0", "0000:81:01.1"}, "other.com/x": {"x1"}}},
		{Namespace: "kube-system", Name: "b", Devices: map[string][]string{}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("List mismatch (-want +got):\n%s", diff)
	}
	if got[1].Key() != "kube-system/b" {
		t.Errorf("Key = %q", got[1].Key())
	}
}

// TestListUnreachable: no server is one line that names the socket.
func TestListUnreachable(t *testing.T) {
	socket := shortSocket(t)
	_, err := podresources.Client{Socket: socket}.List(context.Background())
	if err == nil || !strings.HasPrefix(err.Error(), "kubelet pod-resources API at "+socket+": Unavailable: ") || strings.Contains(err.Error(), "\n") {
		t.Errorf("List without a server: %v", err)
	}
}
