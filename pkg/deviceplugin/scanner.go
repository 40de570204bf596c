package deviceplugin

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"syscall"
	"time"

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

	mu       sync.Mutex
	config   *Config
	home     map[string]homeEntry // VF address → where it was first seen
	stranded strandedTracker
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
	portNetdev := map[string]map[int]string{} // adapter slot → port → netdev
	for _, a := range node.Adapters {
		if a.PF4 != nil {
			m := map[int]string{}
			for _, pt := range a.PF4.Ports {
				m[pt.Index] = pt.Netdev
			}
			portNetdev[a.Slot] = m
		}
	}
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
		pool := cfg.Pools[h.pool]
		d := s.device(v, pool, portNetdev)
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
	return tree, derr
}

func (s *ChelsioScanner) device(v *vf.VF, pool Pool, portNetdev map[string]map[int]string) *Device {
	slot := v.PF.Slot()
	d := &Device{
		ID: v.Addr.String(), Healthy: true, NUMANode: v.NUMANode, Adapter: slot, Port: v.Port,
		PF: v.PF.String(), VFIndex: v.VFIndex, Driver: v.Driver, IOMMUGroup: v.IOMMUGroup, Model: v.Model,
	}
	if pool.ExcludeTopology {
		d.NUMANode = -1
	}
	if info := pool.AdditionalInfo; len(info) > 0 {
		d.Extra = map[string]string{}
		maps.Copy(d.Extra, info["*"])
		maps.Copy(d.Extra, info[d.ID])
	}
	if nd, ok := portNetdev[slot][v.Port]; ok {
		if up, err := s.portUp(slot, nd); err == nil && !up {
			d.Healthy, d.Reason = false, fmt.Sprintf("port %d (%s) link down", v.Port, nd)
		}
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
