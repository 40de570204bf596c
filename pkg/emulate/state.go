package emulate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// DefaultName is the name prefix of everything the emulated node creates.
const DefaultName = "chelsio-emu"

// MaxVFs is the most VFs a worker can have: 16 on each of PF0-PF3.
const MaxVFs = 64

// Config describes an emulated node.
type Config struct {
	Name    string // prefix of every created object; default DefaultName
	Model   string // adapter model; default "T62100-CR"
	VFs     int    // VFs per worker, 1..64; default 8
	Workers int    // default 2
	MTU     int    // MTU of VF and port netdevs; default 1500
	// Spread places VFs round-robin on PF0-PF3 (so they spread over ports) instead of
	// filling PF0 first, as the reference procedure does.
	Spread bool
	// RunDir holds the state directory; default /run.
	RunDir string
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,23}$`)

// place fills in the default name and run directory and checks the name: all it
// takes to find the node's state directory.
func (c *Config) place() error {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.RunDir == "" {
		c.RunDir = "/run"
	}
	if !nameRE.MatchString(c.Name) {
		return fmt.Errorf("invalid name %q: want 1-24 of a-z, 0-9, '-', starting with a letter", c.Name)
	}
	return nil
}

func (c *Config) defaults() error {
	if err := c.place(); err != nil {
		return err
	}
	if c.Model == "" {
		c.Model = "T62100-CR"
	}
	if c.VFs == 0 {
		c.VFs = 8
	}
	if c.Workers == 0 {
		c.Workers = 2
	}
	if c.MTU == 0 {
		c.MTU = 1500
	}
	if abs, err := filepath.Abs(c.RunDir); err == nil {
		c.RunDir = abs
	}
	switch {
	case c.VFs < 1 || c.VFs > MaxVFs:
		return fmt.Errorf("invalid VF count %d: want 1..%d per worker", c.VFs, MaxVFs)
	case c.Workers < 1 || c.Workers > 8:
		return fmt.Errorf("invalid worker count %d: want 1..8", c.Workers)
	case c.MTU < 81 || c.MTU > 9600:
		return fmt.Errorf("invalid MTU %d: a Chelsio VF takes 81..9600", c.MTU)
	}
	if _, ok := vf.LookupModel(c.Model); !ok {
		return fmt.Errorf("unknown model %q: want a Chelsio model, e.g. T62100-CR, T6225-CR, T540-CR or T520-CR", c.Model)
	}
	return nil
}

// StateDir returns the directory that holds the node's state and sysfs trees.
func (c Config) StateDir() string { return filepath.Join(c.RunDir, c.Name) }

// State is what Up records in <state dir>/state.json.
type State struct {
	Config     Config   `json:"config"`
	Workers    []Worker `json:"workers"`
	FabricNS   string   `json:"fabricNetns,omitempty"` // holds the peers of an unpaired worker
	WatcherPID int      `json:"watcherPID"`
}

// Worker is one emulated node.
type Worker struct {
	Index  int    `json:"index"`  // 1-based
	Netns  string `json:"netns"`  // name under /run/netns
	Sysfs  string `json:"sysfs"`  // root of its fake sysfs tree
	VFs    []VF   `json:"vfs"`    // by PCI address
	Ports  []Port `json:"ports"`  // PF4 port netdevs
	PeerOf int    `json:"peerOf"` // the worker cabled to this one; 0 for the fabric namespace
}

// VF is one emulated VF: a veth end in the worker namespace.
type VF struct {
	Addr    vf.PCIAddr `json:"pciAddress"`
	PF      int        `json:"pf"`
	Index   int        `json:"vfIndex"`
	Port    int        `json:"port"`
	Netdev  string     `json:"netdev"`  // name given at creation
	MAC     string     `json:"mac"`     // address given at creation
	AltName string     `json:"altName"` // stable identity across renames and moves
}

// Port is one emulated port netdev of PF4.
type Port struct {
	Index   int        `json:"index"`
	Addr    vf.PCIAddr `json:"pciAddress"`
	Netdev  string     `json:"netdev"`
	MAC     string     `json:"mac"`
	AltName string     `json:"altName"`
}

// Root returns the worker's sysfs root.
func (w Worker) Root() sysfs.Root { return sysfs.Root(w.Sysfs) }

// NetnsPath returns the bind-mounted namespace file.
func (w Worker) NetnsPath() string { return netnsPath(w.Netns) }

func netnsPath(name string) string { return filepath.Join("/run/netns", name) }

// altName is the stable alternative name of a worker's netdev: it survives renames
// and moves between namespaces, and tells the watcher which VF a link is.
func altName(name string, worker int, id string) string {
	return fmt.Sprintf("%s-w%d.%s", name, worker, strings.ReplaceAll(id, ":", "."))
}

// fabricAltName is the alternative name of the fabric namespace's end of a cable whose
// other end is the unpaired worker's netdev id.
func fabricAltName(name, id string) string {
	return fmt.Sprintf("%s-fabric.%s", name, strings.ReplaceAll(id, ":", "."))
}

// ErrNotUp reports that no emulated node of that name is up.
var ErrNotUp = errors.New("emulated node is not up")

// Load reads the state of the emulated node called name under runDir ("" = /run).
func Load(runDir, name string) (*State, error) {
	c := Config{Name: name, RunDir: runDir}
	if err := c.place(); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(c.StateDir(), "state.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: no %s (run `chelsio-vf emulate up` first)", ErrNotUp, filepath.Join(c.StateDir(), "state.json"))
	}
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(c.StateDir(), "state.json"), err)
	}
	return &s, nil
}

// Worker returns worker n (1-based).
func (s *State) Worker(n int) (*Worker, error) {
	if n < 1 || n > len(s.Workers) {
		return nil, fmt.Errorf("no worker %d: the emulated node %q has workers 1..%d", n, s.Config.Name, len(s.Workers))
	}
	return &s.Workers[n-1], nil
}

func (s *State) save() error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	p := filepath.Join(s.Config.StateDir(), "state.json")
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}
