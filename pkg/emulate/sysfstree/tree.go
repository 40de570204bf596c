package sysfstree

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// VFRef names one VF of an adapter by PF number and VF index.
type VFRef struct{ PF, VF int }

// Adapter describes one card to build. The zero value is a T62100-CR with no VFs.
type Adapter struct {
	Model    string // product name from the ID table; default "T62100-CR"
	DeviceID uint16 // any function ID of the board; overrides Model (unknown boards too)
	Domain   uint32
	Bus      uint8 // default 0x81, then +2 per adapter
	NUMANode int   // numa_node of every function
	// VFs is sriov_numvfs of PF0-PF3.
	VFs      [4]int
	TotalVFs int // sriov_totalvfs of each PF; default 16
	Ports    int // PF4 port netdevs; default what the model implies
	// MgmtIndex is the <adap> of mgmtpf<adap>,<pf>; default the adapter's position + 1.
	MgmtIndex int
	// Drivers overrides the driver of single VFs: "vfio-pci", or "" for unbound.
	// Every other VF is on cxgb4vf with a netdev.
	Drivers map[VFRef]string
	// NoPF4 leaves PF4 out (as when the kernel hides it or cxgb4 failed on it).
	NoPF4 bool
	// Vendor overrides the vendor ID of every function (to build non-Chelsio cards).
	Vendor uint16
	// MACBase is the 3 low bytes of the adapter's base MAC (00:07:43:xx:yy:zz).
	MACBase uint32
}

// Options apply to a whole tree.
type Options struct {
	// AbsoluteLinks writes symbolic links as absolute paths into the tree instead of
	// the kernel's relative ones, so that a directory of the tree bind-mounted over
	// /sys/bus/pci/devices still resolves them.
	AbsoluteLinks bool
}

// Tree is a fake sysfs tree on disk.
type Tree struct {
	Root      sysfs.Root
	Opts      Options
	Adapters  []*BuiltAdapter
	nextIOMMU int
}

// BuiltAdapter records what Build made for one Adapter.
type BuiltAdapter struct {
	Spec     Adapter
	Product  vf.Product
	PFs      [4]vf.PCIAddr
	PF4      vf.PCIAddr
	Ports    []Netdev     // PF4 port netdevs
	Mgmt     [4]string    // mgmtpf name per PF ("" while numvfs is 0)
	VFs      [4][]BuiltVF // per PF, by VF index
	rootPort string       // devices/pci0000:80/0000:80:03.0
}

// BuiltVF is one VF that Build made.
type BuiltVF struct {
	Addr   vf.PCIAddr
	Driver string
	Netdev Netdev // zero when the VF has no netdev
	Port   int
}

// Netdev is a netdev entry of the tree.
type Netdev struct {
	Name    string
	MAC     string
	MTU     int
	DevPort int
	Type    int // ARPHRD: 1 ether, 65534 none
}

// NewTree starts an empty tree (bus/pci/devices, drivers, class/net) under dir. The
// tree holds the vf.EmulatedMarker directory, so that vf.NewMgmt plays its management
// netdevs with vf.EmulatedMgmt.
func NewTree(dir string, opts Options) (*Tree, error) {
	t := &Tree{Root: sysfs.Root(dir), Opts: opts, nextIOMMU: 40}
	for _, d := range []string{"bus/pci/devices", "bus/pci/drivers", "class/net", "kernel/iommu_groups", "devices/virtual/net", vf.EmulatedMarker} {
		if err := os.MkdirAll(t.Root.Path(d), 0o755); err != nil {
			return nil, err
		}
	}
	for _, d := range []string{vf.DriverCxgb4, vf.DriverCxgb4VF, vf.DriverVFIO} {
		if err := t.ensureDriver(d); err != nil {
			return nil, err
		}
	}
	// Every namespace has a loopback device; class/net lists it.
	lo := Netdev{Name: "lo", MAC: "00:00:00:00:00:00", MTU: 65536, Type: 772}
	if err := t.writeNetdev("devices/virtual", lo); err != nil {
		return nil, err
	}
	return t, nil
}

// Build makes a tree with the given adapters under dir.
func Build(dir string, opts Options, adapters ...Adapter) (*Tree, error) {
	t, err := NewTree(dir, opts)
	if err != nil {
		return nil, err
	}
	for _, a := range adapters {
		if _, err := t.AddAdapter(a); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// link makes a symbolic link at rel (relative to the root) pointing to target
// (relative to the root), written the kernel's way: relative to rel's directory.
func (t *Tree) link(target, rel string) error {
	p := t.Root.Path(rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	dst := t.Root.Path(target)
	if !t.Opts.AbsoluteLinks {
		r, err := filepath.Rel(filepath.Dir(p), dst)
		if err != nil {
			return err
		}
		dst = r
	} else if abs, err := filepath.Abs(dst); err == nil {
		dst = abs
	}
	_ = os.Remove(p) // replacing a link is what the kernel does on rebind
	return os.Symlink(dst, p)
}

// WriteFile writes an attribute file (relative to the root), creating its directory.
// The content is replaced atomically (temporary file, rename): another process
// reading the tree, as the emulated node's tools do, never sees an empty file.
func (t *Tree) WriteFile(rel, content string) error {
	p := t.Root.Path(rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return writeAtomic(p, content+"\n")
}

func writeAtomic(p, content string) error {
	f, err := os.CreateTemp(filepath.Dir(p), ".sysfstree-*")
	if err != nil {
		return err
	}
	_, werr := f.WriteString(content)
	cerr := f.Close()
	if err := errors.Join(werr, cerr, os.Chmod(f.Name(), 0o644)); err != nil {
		_ = os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), p); err != nil {
		_ = os.Remove(f.Name())
		return err
	}
	return nil
}

func (t *Tree) ensureDriver(name string) error {
	d := "bus/pci/drivers/" + name
	if err := os.MkdirAll(t.Root.Path(d), 0o755); err != nil {
		return err
	}
	for _, f := range []string{"bind", "unbind", "new_id", "remove_id"} {
		if err := t.WriteFile(d+"/"+f, ""); err != nil {
			return err
		}
	}
	return nil
}

// Function describes one PCI function to add.
type Function struct {
	Addr     vf.PCIAddr
	Vendor   uint16
	Device   uint16
	Class    uint32 // default 0x020000 (Ethernet)
	Driver   string // "" unbound
	NUMANode int
	IOMMU    bool // give the function its own IOMMU group
	// RootPort is the directory (relative to the root) the function lives in; default
	// devices/pci<domain>:<bus-1>/<domain>:<bus-1>:03.0.
	RootPort string
}

// DevicePath returns the function's directory relative to the root, through the
// bus/pci/devices link ("bus/pci/devices/0000:81:01.0").
func DevicePath(addr vf.PCIAddr) string { return "bus/pci/devices/" + addr.String() }

func defaultRootPort(addr vf.PCIAddr) string {
	rb := addr.Bus - 1
	return fmt.Sprintf("devices/pci%04x:%02x/%04x:%02x:03.0", addr.Domain, rb, addr.Domain, rb)
}

// AddFunction creates a PCI function directory with its standard attributes and links.
func (t *Tree) AddFunction(f Function) error {
	if f.RootPort == "" {
		f.RootPort = defaultRootPort(f.Addr)
	}
	if f.Class == 0 {
		f.Class = 0x020000
	}
	a := f.Addr.String()
	dir := f.RootPort + "/" + a
	files := map[string]string{
		"vendor":           fmt.Sprintf("0x%04x", f.Vendor),
		"device":           fmt.Sprintf("0x%04x", f.Device),
		"class":            fmt.Sprintf("0x%06x", f.Class),
		"subsystem_vendor": fmt.Sprintf("0x%04x", f.Vendor),
		"subsystem_device": "0x0000",
		"numa_node":        strconv.Itoa(f.NUMANode),
		"enable":           "1",
	}
	for k, v := range files {
		if err := t.WriteFile(dir+"/"+k, v); err != nil {
			return err
		}
	}
	if err := t.link(dir, DevicePath(f.Addr)); err != nil {
		return err
	}
	if err := t.link("bus/pci", dir+"/subsystem"); err != nil {
		return err
	}
	if f.IOMMU {
		g := strconv.Itoa(t.nextIOMMU)
		t.nextIOMMU++
		if err := t.link("kernel/iommu_groups/"+g, dir+"/iommu_group"); err != nil {
			return err
		}
		if err := t.link(dir, "kernel/iommu_groups/"+g+"/devices/"+a); err != nil {
			return err
		}
	}
	return t.Bind(f.Addr, f.Driver)
}

// Bind points the function's driver link at driver and adds the driver's link back,
// as a bind through bus/pci/drivers/<driver>/bind does; "" unbinds.
func (t *Tree) Bind(addr vf.PCIAddr, driver string) error {
	dev := DevicePath(addr)
	target, err := os.Readlink(t.Root.Path(dev))
	if err != nil {
		return err
	}
	dir := t.relFromDevicesLink(target)
	if old, err := t.Root.LinkBase(dev + "/driver"); err == nil {
		_ = os.Remove(t.Root.Path("bus/pci/drivers/" + old + "/" + addr.String()))
		if err := os.Remove(t.Root.Path(dir + "/driver")); err != nil {
			return err
		}
	}
	if driver == "" {
		return nil
	}
	if err := t.ensureDriver(driver); err != nil {
		return err
	}
	if err := t.link("bus/pci/drivers/"+driver, dir+"/driver"); err != nil {
		return err
	}
	return t.link(dir, "bus/pci/drivers/"+driver+"/"+addr.String())
}

// relFromDevicesLink turns a bus/pci/devices link target into a root-relative path.
func (t *Tree) relFromDevicesLink(target string) string {
	if filepath.IsAbs(target) {
		abs, _ := filepath.Abs(string(t.Root))
		r, _ := filepath.Rel(abs, target)
		return r
	}
	return filepath.Clean(filepath.Join("bus/pci/devices", target))
}

// FunctionDir returns the real (non-link) directory of a function, root-relative.
func (t *Tree) FunctionDir(addr vf.PCIAddr) (string, error) {
	target, err := os.Readlink(t.Root.Path(DevicePath(addr)))
	if err != nil {
		return "", err
	}
	return t.relFromDevicesLink(target), nil
}

// AddNetdev adds net/<name> under the function and its class/net link.
func (t *Tree) AddNetdev(addr vf.PCIAddr, n Netdev) error {
	dir, err := t.FunctionDir(addr)
	if err != nil {
		return err
	}
	return t.writeNetdev(dir, n)
}

func (t *Tree) writeNetdev(devDir string, n Netdev) error {
	if err := checkName(n.Name); err != nil {
		return err
	}
	nd := devDir + "/net/" + n.Name
	operstate := "down"
	files := map[string]string{
		"address":   n.MAC,
		"mtu":       strconv.Itoa(n.MTU),
		"dev_port":  strconv.Itoa(n.DevPort),
		"type":      strconv.Itoa(n.Type),
		"operstate": operstate,
		"carrier":   "0",
	}
	for k, v := range files {
		if err := t.WriteFile(nd+"/"+k, v); err != nil {
			return err
		}
	}
	if devDir != "devices/virtual" {
		if err := t.link(devDir, nd+"/device"); err != nil {
			return err
		}
	}
	return t.link(nd, "class/net/"+n.Name)
}

// RemoveNetdev removes net/<name> of the function and its class/net link, as the
// kernel does when the netdev leaves this network namespace or is unregistered.
func (t *Tree) RemoveNetdev(addr vf.PCIAddr, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	dir, err := t.FunctionDir(addr)
	if err != nil {
		return err
	}
	err1 := os.RemoveAll(t.Root.Path(dir + "/net/" + name))
	err2 := os.Remove(t.Root.Path("class/net/" + name))
	if errors.Is(err2, os.ErrNotExist) {
		err2 = nil
	}
	// An empty net/ goes too: functions without netdevs have none.
	_ = os.Remove(t.Root.Path(dir + "/net"))
	return errors.Join(err1, err2)
}

// SetNetdevAttr rewrites one attribute (mtu, address, operstate, carrier) of a netdev.
func (t *Tree) SetNetdevAttr(name, attr, value string) error {
	if err := checkName(name); err != nil {
		return err
	}
	p := "class/net/" + name + "/" + attr
	if !t.Root.Exists(p) {
		return fmt.Errorf("set %s: no such netdev attribute in the tree", t.Root.Path(p))
	}
	return writeAtomic(t.Root.Path(p), value+"\n")
}

func checkName(name string) error {
	if name == "" || name == "." || name == ".." || len(name) > 15 || strings.ContainsAny(name, "/: \t\n\x00") {
		return fmt.Errorf("invalid netdev name %q", name)
	}
	return nil
}
