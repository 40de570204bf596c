package deviceplugin_test

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chelsio-k8s/chelsio-sriov/internal/kubelettest"
	"github.com/chelsio-k8s/chelsio-sriov/internal/syncbuf"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/deviceplugin"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/podresources"
)

// gcRun is a Manager serving chelsio.com/vf (twoNUMATwoPorts) with device-info
// files and kubelet's pod-resources API at podSocket, whose stand-in the test
// starts when it wants kubelet to answer.
type gcRun struct {
	m         *deviceplugin.Manager
	kubelet   *kubelettest.Kubelet
	infoDir   string
	podSocket string
	log       *syncbuf.Buffer
}

const gcGrace = 300 * time.Millisecond

func startGC(t *testing.T) *gcRun {
	t.Helper()
	dir := shortTempDir(t)
	k, err := kubelettest.Start(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	r := &gcRun{kubelet: k, infoDir: t.TempDir(), podSocket: filepath.Join(dir, "pod-resources.sock"), log: &syncbuf.Buffer{}}
	tree := deviceplugin.DeviceTree{"chelsio.com/vf": twoNUMATwoPorts("chelsio.com", "vf")}
	r.m = deviceplugin.NewManager(&fakeScanner{tree: tree}, slog.New(slog.NewTextHandler(r.log, nil)))
	r.m.Dir, r.m.Interval, r.m.DeviceInfoDir = dir, 20*time.Millisecond, r.infoDir
	r.m.PodResources, r.m.DeviceInfoGrace = podresources.Client{Socket: r.podSocket}, gcGrace
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	wait(t, k, "chelsio.com/vf listed", func(p map[string]*kubelettest.Plugin) bool {
		return p["chelsio.com/vf"] != nil && p["chelsio.com/vf"].Lists > 0
	})
	return r
}

func (r *gcRun) file(id string) string {
	return deviceplugin.DeviceInfoPath(r.infoDir, "chelsio.com/vf", id)
}

func exists(t *testing.T, p string) bool {
	t.Helper()
	_, err := os.Stat(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

// eventually polls cond for up to 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDeviceInfoRemovedWhenNoPodHoldsIt: kubelet's pod-resources API lists one of
// two allocated devices; the other's device-info file goes after the grace, the
// held one's stays, and so do files that are not the plugin's.
func TestDeviceInfoRemovedWhenNoPodHoldsIt(t *testing.T) {
	r := startGC(t)
	pr, err := kubelettest.StartPodResources(r.podSocket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pr.Close)
	pr.Set(kubelettest.PodDevices{Namespace: "default", Name: "pod-a", Containers: map[string]map[string][]string{
		"app": {"chelsio.com/vf": {"0000:81:01.0"}},
	}})
	foreign := []string{
		filepath.Join(r.infoDir, "other.com-vf-0000:81:01.1-device.json"),
		filepath.Join(r.infoDir, "chelsio.com-vf-notes.json"),
	}
	for _, p := range foreign {
		if err := os.WriteFile(p, []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-time.Hour)
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"0000:81:01.0", "0000:81:01.1"} {
		if _, err := r.kubelet.Allocate(context.Background(), "chelsio.com/vf", id); err != nil {
			t.Fatalf("Allocate %s: %v", id, err)
		}
		if !exists(t, r.file(id)) {
			t.Fatalf("no device-info file for %s", id)
		}
	}
	eventually(t, "the file of the device no pod holds removed", func() bool { return !exists(t, r.file("0000:81:01.1")) })
	lists := pr.Lists()
	eventually(t, "three more answers of kubelet's", func() bool { return pr.Lists() >= lists+3 })
	if !exists(t, r.file("0000:81:01.0")) {
		t.Error("the file of the device pod-a holds was removed")
	}
	for _, p := range foreign {
		if !exists(t, p) {
			t.Errorf("%s, not the plugin's, was removed", p)
		}
	}
	if !strings.Contains(r.log.String(), "device-info file removed") {
		t.Errorf("no log line of the removal:\n%s", r.log)
	}
	rec := httptest.NewRecorder()
	r.m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", http.NoBody))
	if want := `chelsio_sriov_dp_device_info_removed_total{resource="chelsio.com/vf"} 1`; !strings.Contains(rec.Body.String(), want) {
		t.Errorf("/metrics has no %s", want)
	}
}

// TestDeviceInfoKeptWhileKubeletDoesNotAnswer: without kubelet's answer nothing is
// removed, and the log says so once; once it answers, the file goes after the grace.
func TestDeviceInfoKeptWhileKubeletDoesNotAnswer(t *testing.T) {
	r := startGC(t)
	const id = "0000:81:01.1"
	if _, err := r.kubelet.Allocate(context.Background(), "chelsio.com/vf", id); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the log saying kubelet does not answer", func() bool {
		return strings.Contains(r.log.String(), "pod-resources API does not answer")
	})
	time.Sleep(4 * gcGrace) // several rounds without an answer
	if !exists(t, r.file(id)) {
		t.Fatal("the file was removed while kubelet did not answer")
	}
	if n := strings.Count(r.log.String(), "pod-resources API does not answer"); n != 1 {
		t.Errorf("%d log lines about kubelet not answering, want 1:\n%s", n, r.log)
	}
	pr, err := kubelettest.StartPodResources(r.podSocket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pr.Close)
	eventually(t, "the file removed once kubelet answers", func() bool { return !exists(t, r.file(id)) })
	if !strings.Contains(r.log.String(), "answers again") {
		t.Errorf("no log line of kubelet answering again:\n%s", r.log)
	}
}
