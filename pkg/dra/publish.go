package dra

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"time"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/dynamic-resource-allocation/resourceslice"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/deviceplugin"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
)

// DefaultInterval is the rescan interval, the safety net under uevents and link
// events.
const DefaultInterval = 10 * time.Second

// Publisher takes the node's devices: kubeletplugin.Helper's PublishResources, or
// a test's.
type Publisher func(ctx context.Context, r resourceslice.DriverResources) error

// Driver is the DRA driver of one node.
type Driver struct {
	Root         sysfs.Root
	Scanner      deviceplugin.Scanner
	NodeName     string // the pool's name
	ResourceName string // the k8s.cni.cncf.io/resourceName of every device
	// Taints taints an unhealthy VF (NoSchedule); false withdraws it instead, for
	// clusters without the DRADeviceTaints feature.
	Taints   bool
	Interval time.Duration
	Triggers []<-chan struct{} // each value asks for a rescan at once
	Log      *slog.Logger

	// Where Prepare writes: CDI specs, Multus device-info files, the checkpoint.
	CDIDir, DeviceInfoDir, CheckpointPath string

	prepMu     sync.Mutex // one Prepare or Unprepare at a time: they share the checkpoint
	mu         sync.Mutex
	pub        Publication // the last scan's
	generation int64
	lastErr    error // of the last publish; errNotYet before the first
}

// errNotYet is Healthy's answer before the first publish.
var errNotYet = errors.New("no ResourceSlice published yet")

// Run scans and publishes until ctx ends: at once, on every trigger and every
// Interval. A scan that finds what the last one published publishes nothing.
func (d *Driver) Run(ctx context.Context, publish Publisher) error {
	interval := d.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	trigger := deviceplugin.MergeTriggers(ctx, d.Triggers)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		d.Rescan(ctx, publish)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-trigger:
		}
	}
}

// Rescan scans once and publishes what changed.
func (d *Driver) Rescan(ctx context.Context, publish Publisher) {
	tree, err := d.Scanner.Scan()
	if err != nil {
		d.log().Warn("scan", "err", err)
	}
	if tree == nil {
		return
	}
	pub, err := devicesOf(d.Root, tree, d.ResourceName, d.Taints)
	if err != nil {
		d.log().Warn("devices", "err", err)
	}
	d.mu.Lock()
	same := d.generation > 0 && reflect.DeepEqual(pub.Devices, d.pub.Devices)
	d.pub = pub
	if !same {
		d.generation++
	}
	gen := d.generation
	d.mu.Unlock()
	if same {
		return
	}
	if err := publish(ctx, d.resources(pub.Devices)); err != nil {
		d.log().Error("publish ResourceSlices", "err", err)
		d.mu.Lock()
		d.generation, d.pub = 0, Publication{} // publish again at the next scan
		d.lastErr = fmt.Errorf("publish ResourceSlices: %w", err)
		d.mu.Unlock()
		return
	}
	d.mu.Lock()
	d.lastErr = nil
	d.mu.Unlock()
	d.log().Info("ResourceSlices published", "devices", len(pub.Devices), "generation", gen)
}

// resources is the node's one pool, named after the node; the controller counts
// its generations.
func (d *Driver) resources(devices []resourceapi.Device) resourceslice.DriverResources {
	var sl []resourceslice.Slice
	for _, s := range slicesOf(devices) {
		sl = append(sl, resourceslice.Slice{Devices: s})
	}
	return resourceslice.DriverResources{Pools: map[string]resourceslice.Pool{d.NodeName: {Slices: sl}}}
}

// vf returns the scanned VF of a device name, and whether it is published
// (healthy, or tainted).
func (d *Driver) vf(name string) (*deviceplugin.Device, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.pub.VFs[name]
	return v, ok
}

// Healthy is nil once the node's ResourceSlices are published and the last
// publish succeeded: what /healthz answers, for the DaemonSet's probes.
func (d *Driver) Healthy() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.generation == 0 && d.lastErr == nil {
		return errNotYet
	}
	return d.lastErr
}

func (d *Driver) log() *slog.Logger {
	if d.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Log
}
