package deviceplugin

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cnistore"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/podresources"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// DefaultCNIStateDir is the CNI plugin's default state directory, where the
// scanner looks for the attachments that record VFs out of the node.
const DefaultCNIStateDir = cnistore.DefaultDir

// DefaultDeviceInfoGrace is how long a device-info file whose device no pod holds
// is kept. Kubelet lists a device in its pod-resources API once it has admitted
// the pod, right after Allocate, and only the CNI ADD of the pod's sandbox reads
// the file; the grace is there for what may delay the listing (a kubelet restart,
// a slow admission), and costs only a few hundred bytes of tmpfs meanwhile.
const DefaultDeviceInfoGrace = 5 * time.Minute

// PodLister lists the pods kubelet runs, with the devices they hold
// (podresources.Client does, through kubelet's pod-resources API).
type PodLister interface {
	List(ctx context.Context) ([]podresources.Pod, error)
}

// devInfoGC removes the device-info files of devices that no pod holds any more:
// Allocate writes one per device and nothing else removes them.
type devInfoGC struct {
	m      *Manager
	grace  time.Duration
	unheld map[string]time.Time // file → first answer of kubelet's, in an unbroken run, that no pod held its device
	down   bool                 // kubelet's API did not answer last time (logged once)
}

// startDeviceInfoGC removes, until ctx ends, the device-info files that no pod has
// needed for DeviceInfoGrace; wait waits for it to end. Without DeviceInfoDir or
// PodResources it does nothing.
func (m *Manager) startDeviceInfoGC(ctx context.Context) (wait func()) {
	if m.DeviceInfoDir == "" || m.PodResources == nil {
		return func() {}
	}
	g := &devInfoGC{m: m, grace: m.DeviceInfoGrace, unheld: map[string]time.Time{}}
	if g.grace <= 0 {
		g.grace = DefaultDeviceInfoGrace
	}
	every := min(max(g.grace/4, 10*time.Millisecond), 30*time.Second)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				g.round(ctx, time.Now())
			}
		}
	}()
	return func() { <-done }
}

// round asks kubelet which devices pods hold and removes each device-info file of
// the plugin's resources whose device no answer has listed for the grace, and that
// is itself older than the grace. When kubelet does not answer, nothing is removed,
// and a device must again go unlisted for a whole grace once it answers.
func (g *devInfoGC) round(ctx context.Context, now time.Time) {
	log := g.m.Log
	pods, err := g.m.PodResources.List(ctx)
	if err != nil {
		if !g.down && ctx.Err() == nil {
			log.Warn("kubelet's pod-resources API does not answer; device-info files are kept until it does", "err", err)
		}
		g.down, g.unheld = true, map[string]time.Time{}
		return
	}
	if g.down {
		g.down = false
		log.Info("kubelet's pod-resources API answers again; device-info files of devices no pod holds are removed after the grace", "grace", g.grace)
	}
	dir := g.m.DeviceInfoDir
	held := map[string]bool{}
	for _, p := range pods {
		for res, ids := range p.Devices {
			for _, id := range ids {
				held[DeviceInfoPath(dir, res, id)] = true
			}
		}
	}
	files := g.m.deviceInfoFiles()
	for p := range g.unheld {
		if _, ok := files[p]; !ok || held[p] {
			delete(g.unheld, p)
		}
	}
	for p, res := range files {
		if held[p] {
			continue
		}
		since, ok := g.unheld[p]
		if !ok {
			g.unheld[p] = now
			continue
		}
		if now.Sub(since) < g.grace {
			continue
		}
		removed, err := g.removeIfOld(p, now)
		if err != nil {
			log.Warn("cannot remove a device-info file", "file", p, "err", err)
		}
		if !removed {
			continue
		}
		delete(g.unheld, p)
		g.m.metrics.devInfoGC.WithLabelValues(res).Inc()
		log.Info("device-info file removed: no pod holds its device", "resource", res, "file", p)
	}
}

// removeIfOld removes the regular file p if it is older than the grace; an
// Allocate that writes it meanwhile waits, and a file it has just written stays.
func (g *devInfoGC) removeIfOld(p string, now time.Time) (removed bool, _ error) {
	g.m.devInfoMu.Lock()
	defer g.m.devInfoMu.Unlock()
	fi, err := os.Lstat(p)
	if err != nil || !fi.Mode().IsRegular() || now.Sub(fi.ModTime()) < g.grace {
		return false, nil
	}
	if err := os.Remove(p); err != nil {
		return false, err
	}
	return true, nil
}

// elsewhere is a Scanner that knows which VFs another daemon of the node offers
// (ChelsioScanner with served-by locks).
type elsewhere interface{ OfferedElsewhere(id string) bool }

// offeredElsewhere reports whether the VF id is another daemon's, whose device-info
// file is that daemon's to remove (the DRA driver writes them in the same place).
func (m *Manager) offeredElsewhere(id string) bool {
	e, ok := m.Scanner.(elsewhere)
	return ok && e.OfferedElsewhere(id)
}

// deviceInfoFiles returns the device-info files in DeviceInfoDir of the resources
// served now, each with its resource: <prefix>-<name>-<PCI address>-device.json.
func (m *Manager) deviceInfoFiles() map[string]string {
	m.mu.Lock()
	var names []string
	for name := range m.tree {
		names = append(names, name)
	}
	m.mu.Unlock()
	entries, err := os.ReadDir(m.DeviceInfoDir)
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, e := range entries {
		for _, res := range names {
			prefix := strings.ReplaceAll(res, "/", "-") + "-"
			id, ok := strings.CutPrefix(e.Name(), prefix)
			if !ok {
				continue
			}
			id, ok = strings.CutSuffix(id, "-device.json")
			if a, err := vf.ParsePCIAddr(id); ok && err == nil && a.String() == id && !m.offeredElsewhere(id) {
				out[filepath.Join(m.DeviceInfoDir, e.Name())] = res
			}
		}
	}
	return out
}
