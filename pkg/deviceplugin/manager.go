package deviceplugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// Manager is the device plugin framework: it serves every resource of the
// Scanner's tree on its own socket, registers each with kubelet, and keeps kubelet's
// view current.
type Manager struct {
	// Dir is kubelet's device-plugin directory; KubeletSocket defaults to
	// Dir/kubelet.sock.
	Dir           string
	KubeletSocket string
	Scanner       Scanner
	// Interval between rescans; events (Triggers, WatchPaths) rescan at once.
	Interval time.Duration
	// Triggers ask for a rescan (netlink link events, for example).
	Triggers []<-chan struct{}
	// WatchPaths are directories whose changes ask for a rescan (fsnotify; sysfs
	// itself sends no such events, an emulated tree does).
	WatchPaths []string
	// ConfigFile is watched; on a change Reload is called, then a rescan. A Reload
	// error keeps the running configuration.
	ConfigFile string
	Reload     func() error
	// ConfigSettle is how long the config file must stay unchanged before Reload
	// runs (default 200 ms): an editor or a tool that writes the file in place
	// (truncate, then write) sends several events, and a reload between them would
	// read, and refuse, a half-written file.
	ConfigSettle time.Duration
	// Policy of GetPreferredAllocation: PolicySpread (default) or PolicyPack.
	Policy string
	// DeviceInfoDir receives the Multus device-info files ("" = none).
	DeviceInfoDir string
	// PodResources, when set, tells which devices pods hold: a device-info file
	// whose device none has held for DeviceInfoGrace (default
	// DefaultDeviceInfoGrace) is removed (devinfo_gc.go).
	PodResources    PodLister
	DeviceInfoGrace time.Duration
	devInfoMu       sync.Mutex // a device-info file is written, or judged and removed, at a time
	// CDIKind ("chelsio.com/vf") turns on CDI names for vfio devices; CDIDir gets the
	// CDI spec that defines them.
	CDIKind, CDIDir string
	Log             *slog.Logger

	metrics *metrics

	mu         sync.Mutex
	servers    map[string]*resourceServer
	registered map[string]bool
	tree       DeviceTree
	lastScan   error
	pending    map[string]time.Time // served again (when), to register once the dust settles
	rescan     chan struct{}
	regDue     chan struct{}
	started    chan struct{}
}

// settle is how long a resource whose socket was removed waits before it registers
// again: kubelet removes every socket when it restarts, then creates kubelet.sock,
// and one registration should follow, not two.
const settle = 50 * time.Millisecond

// NewManager returns a Manager with the defaults of a node.
func NewManager(scanner Scanner, log *slog.Logger) *Manager {
	return &Manager{
		Dir: pluginapi.DevicePluginPath, Scanner: scanner, Interval: time.Second, Policy: PolicySpread,
		Log: log, metrics: newMetrics(), servers: map[string]*resourceServer{}, registered: map[string]bool{},
		pending: map[string]time.Time{}, rescan: make(chan struct{}, 1), regDue: make(chan struct{}, 1), started: make(chan struct{}),
	}
}

// Handler serves /metrics and /healthz.
func (m *Manager) Handler() http.Handler { return m.metrics.handler(m.healthy) }

// Started is closed once the first scan is served.
func (m *Manager) Started() <-chan struct{} { return m.started }

// Rescan asks for a rescan now.
func (m *Manager) Rescan() {
	select {
	case m.rescan <- struct{}{}:
	default:
	}
}

func (m *Manager) healthy() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.lastScan != nil {
		return fmt.Errorf("last scan failed: %w", m.lastScan)
	}
	for name := range m.servers {
		if !m.registered[name] {
			return fmt.Errorf("%s is not registered with kubelet", name)
		}
	}
	return nil
}

// Run serves until ctx ends, then stops every server and removes its socket.
func (m *Manager) Run(ctx context.Context) error {
	if m.KubeletSocket == "" {
		m.KubeletSocket = filepath.Join(m.Dir, "kubelet.sock")
	}
	if err := os.MkdirAll(m.Dir, 0o755); err != nil {
		return fmt.Errorf("device-plugin dir: %w", err)
	}
	w, configDir, err := m.watch()
	if err != nil {
		return err
	}
	defer func() { _ = w.Close() }()
	defer m.stopAll()

	if err := m.scanAndServe(ctx); err != nil {
		return err
	}
	defer m.startDeviceInfoGC(ctx)()
	close(m.started)
	return m.loop(ctx, w, configDir)
}

// watch watches the device-plugin directory, WatchPaths and the config file's
// directory, which it returns ("" without a ConfigFile). Only the first is required:
// the others have the rescan interval, or a restart, to fall back on.
func (m *Manager) watch() (_ *fsnotify.Watcher, configDir string, _ error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, "", fmt.Errorf("watch %s: %w", m.Dir, err)
	}
	if err := w.Add(m.Dir); err != nil {
		_ = w.Close()
		return nil, "", fmt.Errorf("watch %s: %w", m.Dir, err)
	}
	for _, p := range m.WatchPaths {
		if err := w.Add(p); err != nil {
			m.Log.Warn("cannot watch for device changes; relying on the rescan interval", "path", p, "err", err)
		}
	}
	if m.ConfigFile != "" {
		configDir = filepath.Dir(m.ConfigFile)
		if err := w.Add(configDir); err != nil {
			m.Log.Warn("cannot watch the config file; changes need a restart", "path", configDir, "err", err)
		}
	}
	return w, configDir, nil
}

// MergeTriggers forwards every channel of triggers into one, which holds at most
// one pending rescan, until ctx is done.
func MergeTriggers(ctx context.Context, triggers []<-chan struct{}) <-chan struct{} {
	merged := make(chan struct{}, 1)
	for _, t := range triggers {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case _, ok := <-t:
					if !ok {
						return
					}
					select {
					case merged <- struct{}{}:
					default:
					}
				}
			}
		}()
	}
	return merged
}

// loop rescans, registers and reloads on ticks, triggers and file events until ctx
// is done.
func (m *Manager) loop(ctx context.Context, w *fsnotify.Watcher, configDir string) error {
	merged := MergeTriggers(ctx, m.Triggers)
	tick := time.NewTicker(m.Interval)
	defer tick.Stop()
	settle := m.ConfigSettle
	if settle <= 0 {
		settle = 200 * time.Millisecond
	}
	reload := time.NewTimer(settle)
	reload.Stop()
	defer reload.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			_ = m.scanAndServe(ctx)
			m.registerMissing(ctx)
		case <-m.rescan:
			_ = m.scanAndServe(ctx)
		case <-m.regDue:
			m.registerPending(ctx)
		case <-merged:
			_ = m.scanAndServe(ctx)
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("fsnotify watcher closed")
			}
			if m.handleEvent(ctx, ev, configDir) {
				reload.Reset(settle) // from the last event
			}
		case <-reload.C:
			m.reloadConfig(ctx)
		case err, ok := <-w.Errors:
			if ok {
				m.Log.Warn("file watch error", "err", err)
			}
		}
	}
}

// handleEvent acts on one file event; it reports a change of the config file,
// which the caller reloads once the file has settled.
func (m *Manager) handleEvent(ctx context.Context, ev fsnotify.Event, configDir string) (configChanged bool) {
	dir := filepath.Dir(ev.Name)
	switch {
	case dir == filepath.Clean(m.Dir):
		if ev.Name == m.KubeletSocket && ev.Has(fsnotify.Create) {
			// kubelet (re)started: it forgot every plugin and removed every socket.
			m.Log.Info("kubelet socket created: registering again", "socket", ev.Name)
			m.reRegisterAll(ctx)
			return false
		}
		if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
			if _, err := os.Lstat(ev.Name); err == nil {
				// A socket is there again: we served it anew since this event. Restarting
				// would unlink that live socket (a listener's Close removes its path) and
				// cause another such event, without end.
				return false
			}
			m.mu.Lock()
			var s *resourceServer
			for _, srv := range m.servers {
				if srv.socket == ev.Name {
					s = srv
				}
			}
			m.mu.Unlock()
			if s != nil {
				m.Log.Info("socket removed: serving and registering again", "resource", s.name, "socket", ev.Name)
				m.restart(s)
			}
		}
	case configDir != "" && dir == configDir:
		// A ConfigMap volume swaps a ..data symlink; a plain file is written in place.
		base := filepath.Base(ev.Name)
		return m.Reload != nil && (base == filepath.Base(m.ConfigFile) || base == "..data")
	default:
		m.Rescan()
	}
	return false
}

// reloadConfig applies the config file, or keeps the running config if it is refused.
func (m *Manager) reloadConfig(ctx context.Context) {
	err := m.Reload()
	m.metrics.observeReload(err)
	if err != nil {
		m.Log.Error("config change refused; keeping the running config", "file", m.ConfigFile, "err", err)
		return
	}
	m.Log.Info("config reloaded", "file", m.ConfigFile)
	_ = m.scanAndServe(ctx)
}

// scanAndServe scans and brings servers and streams in line with the tree.
func (m *Manager) scanAndServe(ctx context.Context) error {
	t0 := time.Now()
	tree, err := m.Scanner.Scan()
	m.metrics.observeScan(time.Since(t0), err)
	if tree == nil {
		m.mu.Lock()
		m.lastScan = err
		m.mu.Unlock()
		m.Log.Error("scan failed", "err", err)
		return err
	}
	if err != nil {
		m.Log.Warn("some devices could not be read", "err", err)
	}
	m.mu.Lock()
	old := m.tree
	m.tree, m.lastScan = tree, nil
	m.mu.Unlock()
	m.metrics.observeTree(tree)
	m.logChanges(old, tree)

	names := slices.Sorted(func(yield func(string) bool) {
		for n := range tree {
			if !yield(n) {
				return
			}
		}
	})
	for _, name := range names {
		res := tree[name]
		m.mu.Lock()
		s, ok := m.servers[name]
		m.mu.Unlock()
		if ok {
			if !s.current().equal(res) {
				s.update(res)
			}
			continue
		}
		s = newResourceServer(m, res)
		if err := s.start(); err != nil {
			m.Log.Error("cannot serve resource", "resource", name, "err", err)
			continue
		}
		m.mu.Lock()
		m.servers[name] = s
		m.mu.Unlock()
		m.Log.Info("serving resource", "resource", name, "devices", len(res.Devices), "socket", s.socket)
		m.register(ctx, s)
	}
	m.mu.Lock()
	var gone []*resourceServer
	for name, s := range m.servers {
		if _, ok := tree[name]; !ok {
			gone = append(gone, s)
			delete(m.servers, name)
			delete(m.registered, name)
		}
	}
	m.mu.Unlock()
	for _, s := range gone {
		m.Log.Info("resource no longer configured; stopping it", "resource", s.name)
		s.stop()
		_ = os.Remove(s.socket)
	}
	if m.CDIDir != "" && m.CDIKind != "" {
		if err := m.writeCDISpec(tree); err != nil {
			m.Log.Error("write CDI spec", "err", err)
		}
	}
	return nil
}

func (m *Manager) logChanges(old, cur DeviceTree) {
	if old == nil {
		for name, r := range cur {
			m.Log.Info("devices found", "resource", name, "devices", len(r.Devices))
		}
		return
	}
	for name, r := range cur {
		o := old[name]
		for _, id := range r.IDs() {
			d := r.Devices[id]
			var od *Device
			if o != nil {
				od = o.Devices[id]
			}
			switch {
			case od == nil:
				m.Log.Info("device added", "resource", name, "device", id, "healthy", d.Healthy)
			case od.Healthy && !d.Healthy:
				m.Log.Warn("device unhealthy", "resource", name, "device", id, "reason", d.Reason)
			case !od.Healthy && d.Healthy:
				m.Log.Info("device healthy again", "resource", name, "device", id)
			}
		}
		if o != nil {
			for id := range o.Devices {
				if _, ok := r.Devices[id]; !ok {
					m.Log.Warn("device removed", "resource", name, "device", id)
				}
			}
		}
	}
}

func (m *Manager) register(ctx context.Context, s *resourceServer) {
	if err := s.register(ctx); err != nil {
		m.mu.Lock()
		m.registered[s.name] = false
		m.mu.Unlock()
		m.Log.Warn("not registered yet; will retry when kubelet is up", "resource", s.name, "err", err)
		return
	}
	m.mu.Lock()
	m.registered[s.name] = true
	m.mu.Unlock()
	m.metrics.observeRegistration(s.name)
	m.Log.Info("registered with kubelet", "resource", s.name)
}

// registerMissing retries registrations that failed (kubelet was down).
func (m *Manager) registerMissing(ctx context.Context) {
	m.mu.Lock()
	var todo []*resourceServer
	for name, s := range m.servers {
		if _, waiting := m.pending[name]; !m.registered[name] && !waiting {
			todo = append(todo, s)
		}
	}
	m.mu.Unlock()
	if len(todo) == 0 {
		return
	}
	if _, err := os.Stat(m.KubeletSocket); err != nil {
		return
	}
	for _, s := range todo {
		m.register(ctx, s)
	}
}

// restart serves a resource again on a fresh socket; it registers shortly after,
// unless kubelet's new socket makes reRegisterAll do it first.
func (m *Manager) restart(s *resourceServer) {
	s.stop()
	if err := s.start(); err != nil {
		m.Log.Error("cannot serve resource again", "resource", s.name, "err", err)
		return
	}
	m.mu.Lock()
	m.registered[s.name] = false
	m.pending[s.name] = time.Now()
	m.mu.Unlock()
	time.AfterFunc(settle, func() {
		select {
		case m.regDue <- struct{}{}:
		default:
		}
	})
}

// registerPending registers the resources restart left pending for settle. One
// served again since an earlier timer was set waits for its own timer.
func (m *Manager) registerPending(ctx context.Context) {
	m.mu.Lock()
	var todo []*resourceServer
	for name, at := range m.pending {
		if time.Since(at) < settle {
			continue
		}
		delete(m.pending, name)
		if s, ok := m.servers[name]; ok {
			todo = append(todo, s)
		}
	}
	m.mu.Unlock()
	if _, err := os.Stat(m.KubeletSocket); err != nil {
		return // kubelet is down: its new socket will register them
	}
	for _, s := range todo {
		m.register(ctx, s)
	}
}

// reRegisterAll serves every resource again where its socket is gone, then
// registers every one: a new kubelet knows none of them.
func (m *Manager) reRegisterAll(ctx context.Context) {
	m.mu.Lock()
	servers := make([]*resourceServer, 0, len(m.servers))
	for _, s := range m.servers {
		servers = append(servers, s)
	}
	m.pending = map[string]time.Time{}
	m.mu.Unlock()
	for _, s := range servers {
		if _, err := os.Stat(s.socket); err != nil {
			s.stop()
			if err := s.start(); err != nil {
				m.Log.Error("cannot serve resource again", "resource", s.name, "err", err)
				continue
			}
		}
		m.register(ctx, s)
	}
}

func (m *Manager) stopAll() {
	m.mu.Lock()
	servers := m.servers
	m.servers = map[string]*resourceServer{}
	m.mu.Unlock()
	for _, s := range servers {
		s.stop()
		_ = os.Remove(s.socket)
	}
}

// writeCDISpec writes the CDI spec of every vfio device, so that the CDI names
// Allocate returns resolve.
func (m *Manager) writeCDISpec(tree DeviceTree) error {
	type node struct {
		Path string `json:"path"`
	}
	type edits struct {
		DeviceNodes []node `json:"deviceNodes"`
	}
	type dev struct {
		Name           string `json:"name"`
		ContainerEdits edits  `json:"containerEdits"`
	}
	spec := struct {
		CDIVersion     string `json:"cdiVersion"`
		Kind           string `json:"kind"`
		Devices        []dev  `json:"devices"`
		ContainerEdits edits  `json:"containerEdits"`
	}{CDIVersion: "0.6.0", Kind: m.CDIKind, Devices: []dev{}, ContainerEdits: edits{DeviceNodes: []node{{Path: vfioDevice}}}}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for n := range tree {
			if !yield(n) {
				return
			}
		}
	}) {
		r := tree[name]
		for _, id := range r.IDs() {
			if d := r.Devices[id]; d.VFIO() && d.IOMMUGroup >= 0 {
				spec.Devices = append(spec.Devices, dev{Name: cdiName(id), ContainerEdits: edits{DeviceNodes: []node{{Path: fmt.Sprintf("/dev/vfio/%d", d.IOMMUGroup)}}}})
			}
		}
	}
	b, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(m.CDIDir, 0o755); err != nil {
		return err
	}
	p := filepath.Join(m.CDIDir, "chelsio-sriov.json")
	if old, err := os.ReadFile(p); err == nil && string(old) == string(b) {
		return nil
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}
