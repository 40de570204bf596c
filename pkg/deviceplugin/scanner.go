package deviceplugin

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"syscall"
	"time"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/servedby"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// Scanner finds the devices of every resource. The framework calls it at start, on
// a short interval and on events; it must be cheap and safe to call repeatedly.
type Scanner interface {
	// Scan returns the device tree. A non-nil tree with an error is a partial scan:
	// some devices could not be read and were left out.
	Scan() (DeviceTree, error)
}

// PortLinks reports the link state of physical port netdevs, as netlink tells it.
type PortLinks interface {
	// PortUp reports whether the netdev has carrier; known is false when it has
	// never been seen.
	PortUp(netdev string) (up, known bool)
}

// ChelsioScanner is the Scanner of Chelsio VFs: pkg/vf discovery, the pools of the
// configuration, and health.
//
// A VF keeps the pool it was first seen in for as long as it exists: if its driver
// changes (a rebind) it stays there as Unhealthy rather than vanishing from, or
// appearing in, another pool while a pod may hold it. A configuration reload
// (SetConfig) starts afresh.
type ChelsioScanner struct {
	Root  sysfs.Root
	Links PortLinks // nil: port carrier from sysfs
	// CNIStateDir is the CNI plugin's state directory, which the scanner only reads:
	// a cxgb4vf VF whose netdev is out of the node's namespace and that no
	// attachment there records is stranded, and Unhealthy (stranded.go). "" turns
	// the check off.
	CNIStateDir string
	// StrandedAfter is how long a VF must look stranded before it is reported
	// (default 1 s).
	StrandedAfter time.Duration
	// Log gets a line when a VF becomes stranded and when it no longer is (nil: none).
	Log *slog.Logger
	// Served, when set, are the node's served-by locks (pkg/servedby): a VF is
	// offered only while this daemon holds its lock, so that the device plugin and
	// the DRA driver never offer the same VF.
	Served *servedby.Locks
	// FollowDriver offers a VF whose driver changed with its new driver, healthy,
	// rather than as Unhealthy in the pool it was first seen in: right where the
	// driver is an attribute of the device (the DRA driver), not its resource.
	FollowDriver bool

	mu        sync.Mutex
	config    *Config
	home      map[string]homeEntry // VF address → where it was first seen
	stranded  strandedTracker
	elsewhere map[string]string // VF address → the daemon that holds its lock, as last logged
}

type homeEntry struct {
	pool   int
	driver string
}

// NewChelsioScanner returns a scanner of the VFs under root for cfg.
func NewChelsioScanner(root sysfs.Root, cfg *Config, links PortLinks) *ChelsioScanner {
	return &ChelsioScanner{Root: root, Links: links, config: cfg, home: map[string]homeEntry{}}
}

// SetConfig replaces the configuration; VFs are assigned to pools afresh.
func (s *ChelsioScanner) SetConfig(cfg *Config) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.config, s.home = cfg, map[string]homeEntry{}
}

// Config returns the configuration in use.
func (s *ChelsioScanner) Config() *Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.config
}

// Scan implements Scanner.
func (s *ChelsioScanner) Scan() (DeviceTree, error) {
	node, derr := vf.Discover(s.Root, vf.Options{})
	if node == nil {
		return nil, derr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cfg := s.config
	tree := DeviceTree{}
	for _, p := range cfg.Pools {
		tree[p.FullName()] = &Resource{Prefix: p.ResourcePrefix, Name: p.ResourceName, Devices: map[string]*Device{}}
	}
	ports := s.adapterPorts(node)
	vfs := node.VFs()
	stranded := s.strandedVFs(vfs)
	current := map[string]int{}
	for i, group := range cfg.Assign(vfs) {
		for _, v := range group {
			current[v.Addr.String()] = i
		}
	}
	seen := map[string]bool{}
	for _, v := range vfs {
		addr := v.Addr.String()
		seen[addr] = true
		cur, matched := current[addr]
		h, known := s.home[addr]
		if !known {
			if !matched {
				continue
			}
			h = homeEntry{pool: cur, driver: v.Driver}
			s.home[addr] = h
		}
		if !s.serve(addr) {
			continue
		}
		if s.FollowDriver && v.Driver != h.driver {
			h.driver = v.Driver
			s.home[addr] = h
		}
		pool := cfg.Pools[h.pool]
		d := s.device(v, pool, ports)
		d.Stranded = stranded[addr]
		switch {
		case v.Driver != h.driver:
			d.Healthy, d.Reason = false, fmt.Sprintf("driver changed from %s to %s", vf.DriverOr(h.driver, "none"), vf.DriverOr(v.Driver, "none"))
		case matched && cur != h.pool:
			d.Healthy, d.Reason = false, "now matches another pool"
		case d.Stranded && d.Healthy:
			d.Healthy, d.Reason = false, reasonStranded
		}
		tree[pool.FullName()].Devices[addr] = d
	}
	for addr := range s.home {
		if !seen[addr] {
			delete(s.home, addr) // gone from sysfs: no longer offered
		}
	}
	s.keepServed(tree)
	return tree, derr
}

// adapterInfo is what the scan needs of an adapter: its port netdevs, the ones
// whose link is down, and the speed of its ports.
type adapterInfo struct {
	netdev map[int]string // port → PF4's netdev
	down   map[int]bool   // port → link down
	speed  int            // Mbps, from the model
}

// adapterPorts returns the adapterInfo of every adapter, by slot. Each port's link
// is read here once, not once for each of its VFs.
func (s *ChelsioScanner) adapterPorts(node *vf.Node) map[string]adapterInfo {
	out := map[string]adapterInfo{}
	for _, a := range node.Adapters {
		info := adapterInfo{netdev: map[int]string{}, down: map[int]bool{}, speed: a.Product.PortSpeedMbps()}
		if a.PF4 != nil {
			for _, pt := range a.PF4.Ports {
				info.netdev[pt.Index] = pt.Netdev
				if up, err := s.portUp(a.Slot, pt.Netdev); err == nil && !up {
					info.down[pt.Index] = true
				}
			}
		}
		out[a.Slot] = info
	}
	return out
}

// serve takes the VF's served-by lock, and reports whether this daemon may offer
// it. A VF another daemon holds is logged once, when that starts.
func (s *ChelsioScanner) serve(addr string) bool {
	if s.Served == nil {
		return true
	}
	ok, holder, err := s.Served.Take(addr)
	if err != nil {
		holder = err.Error()
	}
	if s.elsewhere == nil {
		s.elsewhere = map[string]string{}
	}
	if ok {
		delete(s.elsewhere, addr)
		return true
	}
	if s.elsewhere[addr] != holder {
		s.elsewhere[addr] = holder
		logTo(s.Log).Warn("VF not offered: another daemon of the node offers it", "vf", addr, "held-by", holder)
	}
	return false
}

// OfferedElsewhere reports whether the last scan found VF id held by another
// daemon's served-by lock.
func (s *ChelsioScanner) OfferedElsewhere(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.elsewhere[id]
	return ok
}

// keepServed lets go of the locks of VFs this scan no longer offers.
func (s *ChelsioScanner) keepServed(tree DeviceTree) {
	if s.Served == nil {
		return
	}
	keep := map[string]bool{}
	for _, r := range tree {
		for id := range r.Devices {
			keep[id] = true
		}
	}
	s.Served.Keep(keep)
}

func (s *ChelsioScanner) device(v *vf.VF, pool Pool, ports map[string]adapterInfo) *Device {
	slot := v.PF.Slot()
	d := &Device{
		ID: v.Addr.String(), Healthy: true, NUMANode: v.NUMANode, Adapter: slot, Port: v.Port,
		PF: v.PF.String(), VFIndex: v.VFIndex, Driver: v.Driver, IOMMUGroup: v.IOMMUGroup, Model: v.Model,
		Chip: string(v.Chip), MgmtNetdev: v.MgmtNetdev, LinkSpeed: ports[slot].speed,
	}
	if pool.ExcludeTopology {
		d.NUMANode = -1
	}
	if info := pool.AdditionalInfo; len(info) > 0 {
		d.Extra = map[string]string{}
		maps.Copy(d.Extra, info["*"])
		maps.Copy(d.Extra, info[d.ID])
	}
	if nd, ok := ports[slot].netdev[v.Port]; ok && ports[slot].down[v.Port] {
		d.Healthy, d.Reason = false, fmt.Sprintf("port %d (%s) link down", v.Port, nd)
	}
	return d
}

// portUp reads a port's link: netlink's view when there is one, else sysfs carrier.
func (s *ChelsioScanner) portUp(slot, netdev string) (bool, error) {
	if s.Links != nil {
		if up, known := s.Links.PortUp(netdev); known {
			return up, nil
		}
	}
	c, err := s.Root.ReadString("class/net/" + netdev + "/carrier")
	if errors.Is(err, syscall.EINVAL) {
		return false, nil // the kernel refuses to read carrier of an interface that is down
	}
	if err != nil {
		return false, errors.Join(err, fmt.Errorf("port %s of %s: link state unknown", netdev, slot))
	}
	return c == "1", nil
}
