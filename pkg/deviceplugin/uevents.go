package deviceplugin

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/uevent"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// The kernel's kobject uevents tell at once what a rescan finds later: a VF added or
// removed (sriov_numvfs), bound to a driver or unbound. UeventWatcher listens to
// them and asks for a rescan when one concerns a Chelsio function; it never takes
// anything else from a message. The periodic rescan stays, as the safety net.

const (
	// ueventRcvBuf bounds what the socket queues: a burst beyond it is reported as
	// an overrun, which asks for a rescan too.
	ueventRcvBuf = 256 << 10
	// ueventWindow is how long the watcher waits after a rescan it asked for
	// before it asks for the next: a burst of events (64 VFs created, each with
	// add, bind and a netdev) makes a rescan at its first event and one after it.
	ueventWindow = 100 * time.Millisecond
)

// What became of a received message (the verdict label of the metric).
const (
	verdictRescan    = "rescan"    // concerns a Chelsio function: a rescan is asked for
	verdictIgnored   = "ignored"   // another device, subsystem or action
	verdictUntrusted = "untrusted" // from a user process, on a sysfs root that is not emulated
	verdictMalformed = "malformed" // not a uevent (uevent.Parse refused it, or it was too large)
	verdictOverrun   = "overrun"   // the kernel dropped messages: a rescan is asked for
)

// ueventActions are the actions after which a rescan may find something new.
var ueventActions = map[string]bool{"add": true, "remove": true, "bind": true, "unbind": true, "move": true, "change": true}

// busKey is a PCI domain and bus. An adapter's functions, its VFs included, share
// its bus.
type busKey struct {
	domain uint32
	bus    uint8
}

// UeventWatcher follows the kernel's uevents in the plugin's network namespace.
type UeventWatcher struct {
	root sysfs.Root
	// emulated: messages from user processes count (the emulated node sends them);
	// on any other root only the kernel's (sender port ID 0) do.
	emulated bool
	window   time.Duration
	log      *slog.Logger
	changed  chan struct{}
	relevant chan struct{}

	mu    sync.Mutex
	buses map[busKey]bool // buses of Chelsio functions seen
	co    coalescer

	received *prometheus.CounterVec
	rescans  prometheus.Counter
}

// WatchUevents opens the uevent socket and follows it until ctx ends. An error means
// no uevents: the caller relies on the rescan interval.
func WatchUevents(ctx context.Context, root sysfs.Root, log *slog.Logger) (*UeventWatcher, error) {
	conn, err := uevent.Listen(ueventRcvBuf)
	if err != nil {
		return nil, err
	}
	return watchUevents(ctx, conn, newUeventWatcher(root, vf.Emulated(root), log)), nil
}

// WatchUeventsAt is WatchUevents in the network namespace at nsPath, where the
// emulated node of root sends its uevents (a test that runs in the node's namespace
// while the emulated worker has its own).
func WatchUeventsAt(ctx context.Context, nsPath string, root sysfs.Root, log *slog.Logger) (*UeventWatcher, error) {
	conn, err := uevent.ListenAt(nsPath, ueventRcvBuf)
	if err != nil {
		return nil, err
	}
	return watchUevents(ctx, conn, newUeventWatcher(root, vf.Emulated(root), log)), nil
}

// watchUevents follows conn with w until ctx ends, then closes conn.
func watchUevents(ctx context.Context, conn *uevent.Conn, w *UeventWatcher) *UeventWatcher {
	w.learnBuses()
	go func() {
		<-ctx.Done()
		_ = conn.Close()
	}()
	go w.read(conn)
	go w.coalesce(ctx)
	return w
}

func newUeventWatcher(root sysfs.Root, emulated bool, log *slog.Logger) *UeventWatcher {
	w := &UeventWatcher{
		root: root, emulated: emulated, window: ueventWindow, log: log,
		changed: make(chan struct{}, 1), relevant: make(chan struct{}, 1), buses: map[busKey]bool{},
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chelsio_sriov_dp_uevents_total", Help: "Kernel uevents received, by verdict: rescan, ignored, untrusted, malformed, overrun.",
		}, []string{"verdict"}),
		rescans: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chelsio_sriov_dp_uevent_rescans_total", Help: "Rescans that uevents asked for.",
		}),
	}
	for _, v := range []string{verdictRescan, verdictIgnored, verdictUntrusted, verdictMalformed, verdictOverrun} {
		w.received.WithLabelValues(v)
	}
	return w
}

// Changed receives a value when a rescan is due.
func (w *UeventWatcher) Changed() <-chan struct{} { return w.changed }

// AddUevents makes the Manager rescan when w asks, and serves w's counters on
// /metrics. Call it before Run.
func (m *Manager) AddUevents(w *UeventWatcher) {
	m.Triggers = append(m.Triggers, w.Changed())
	m.metrics.reg.MustRegister(w.received, w.rescans)
}

// read receives until the socket is closed.
func (w *UeventWatcher) read(conn *uevent.Conn) {
	buf := make([]byte, uevent.MaxSize)
	for {
		n, sender, err := conn.Receive(buf)
		v := ""
		switch {
		case errors.Is(err, os.ErrClosed):
			return
		case errors.Is(err, uevent.ErrOverrun):
			v = verdictOverrun
		case errors.Is(err, uevent.ErrTooLarge):
			v = verdictMalformed
		case err != nil:
			w.log.Warn("uevents stopped; VF changes are seen at the next rescan", "err", err)
			return
		default:
			v = w.judge(buf[:n], sender)
		}
		w.received.WithLabelValues(v).Inc()
		if v == verdictRescan || v == verdictOverrun {
			select {
			case w.relevant <- struct{}{}:
			default:
			}
		}
	}
}

// judge gives the verdict on one message from the netlink port sender.
func (w *UeventWatcher) judge(b []byte, sender uint32) string {
	if sender != 0 && !w.emulated {
		return verdictUntrusted
	}
	m, err := uevent.Parse(b)
	if err != nil {
		return verdictMalformed
	}
	if !w.concerns(m) {
		return verdictIgnored
	}
	return verdictRescan
}

// concerns reports whether m is an action on a Chelsio PCI function or on a netdev
// of one: a pci message with Chelsio's PCI_ID, or one whose DEVPATH names a PCI
// function on the bus of a Chelsio function.
func (w *UeventWatcher) concerns(m *uevent.Message) bool {
	sub := m.Subsystem()
	if !ueventActions[m.Action] || (sub != "pci" && sub != "net") {
		return false
	}
	addr, named := pciAddrIn(m.DevPath)
	if id, ok := m.Env["PCI_ID"]; ok && sub == "pci" {
		vendor, _, _ := strings.Cut(id, ":")
		if v, err := strconv.ParseUint(vendor, 16, 16); err != nil || v != vf.VendorID {
			return false
		}
		if named {
			w.learn(addr)
		}
		return true
	}
	return named && w.onChelsioBus(addr)
}

// pciAddrIn returns the last component of a DEVPATH that is a PCI address: the
// function itself, or the one a netdev hangs under (…/0000:81:01.0/net/eth0).
func pciAddrIn(devpath string) (vf.PCIAddr, bool) {
	parts := strings.Split(devpath, "/")
	for i := len(parts) - 1; i >= 0; i-- {
		if strings.Count(parts[i], ":") != 2 {
			continue
		}
		if a, err := vf.ParsePCIAddr(parts[i]); err == nil {
			return a, true
		}
	}
	return vf.PCIAddr{}, false
}

func (w *UeventWatcher) learn(a vf.PCIAddr) {
	w.mu.Lock()
	w.buses[busKey{a.Domain, a.Bus}] = true
	w.mu.Unlock()
}

// onChelsioBus reports whether a is on a bus where a Chelsio function was seen, or
// is, under the sysfs root, a Chelsio function itself (the DEVPATH mapped to the
// root by its address).
func (w *UeventWatcher) onChelsioBus(a vf.PCIAddr) bool {
	w.mu.Lock()
	known := w.buses[busKey{a.Domain, a.Bus}]
	w.mu.Unlock()
	if known {
		return true
	}
	if v, err := w.root.ReadHex("bus/pci/devices/"+a.String()+"/vendor", 16); err == nil && v == vf.VendorID {
		w.learn(a)
		return true
	}
	return false
}

// learnBuses records the bus of every Chelsio function under the root.
func (w *UeventWatcher) learnBuses() {
	names, err := w.root.ReadDir("bus/pci/devices")
	if err != nil {
		return
	}
	for _, n := range names {
		if a, err := vf.ParsePCIAddr(n); err == nil {
			w.onChelsioBus(a)
		}
	}
}

// coalescer turns relevant events into few rescans: the first event of a burst
// rescans at once and opens a window; events within the window make one rescan when
// it ends, which opens another. The first event also makes that rescan at the
// window's end: the kernel sends remove before the device leaves sysfs, and a
// rescan at once may still find it.
type coalescer struct{ armed, pending bool }

// event returns whether to rescan now (and open the window).
func (c *coalescer) event() (now bool) {
	if c.armed {
		c.pending = true
		return false
	}
	c.armed, c.pending = true, true
	return true
}

// windowEnd returns whether to rescan now (and open another window).
func (c *coalescer) windowEnd() (now bool) {
	if c.pending {
		c.pending = false
		return true
	}
	c.armed = false
	return false
}

func (w *UeventWatcher) coalesce(ctx context.Context) {
	timer := time.NewTimer(w.window)
	timer.Stop()
	defer timer.Stop()
	for {
		var now bool
		select {
		case <-ctx.Done():
			return
		case <-w.relevant:
			w.mu.Lock()
			now = w.co.event()
			w.mu.Unlock()
		case <-timer.C:
			w.mu.Lock()
			now = w.co.windowEnd()
			w.mu.Unlock()
		}
		if now {
			w.rescans.Inc()
			timer.Reset(w.window)
			select {
			case w.changed <- struct{}{}:
			default:
			}
		}
	}
}
