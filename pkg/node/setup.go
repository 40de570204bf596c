package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cnistore"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// errnoENOTSUPP is the kernel-internal ENOTSUPP (524) that cxgb4 returns when the PF's
// parent bridge lacks ARI; user space sees it as errno 524.
const errnoENOTSUPP = syscall.Errno(524)

// Links is the part of the netlink API that Setup uses; *netlink.Handle satisfies it.
type Links interface {
	LinkByName(name string) (netlink.Link, error)
	LinkSetMTU(link netlink.Link, mtu int) error
}

// SetupConfig is what `chelsio-vf setup` asks for.
type SetupConfig struct {
	Sysfs   sysfs.Root // default sysfs.FromEnv()
	Adapter string     // slot ("0000:81:00") of the adapter to set up; "" or "all": every one
	PF      int        // the PF (0-3) that creates the VFs
	VFs     int        // sriov_numvfs to set; LeaveVFs keeps each PF's count
	MTU     int        // MTU of the adapter's port netdevs and of every VF netdev; 0 leaves it
	Driver  string     // driver of the VFs: vf.DriverCxgb4VF (default) or vf.DriverVFIO
	// Drivers overrides Driver for single VFs, by VF index (a node policy's VF
	// ranges: VFs 0-5 on cxgb4vf, 6-7 on vfio-pci).
	Drivers map[int]string
	DryRun  bool // print every write, make none
	// CNIStateDir is the CNI plugin's state directory, where Setup looks for the
	// pods that hold VFs; default cnistore.DefaultDir.
	CNIStateDir string
	// Pods asks kubelet which pods hold which VFs (its pod-resources API); nil
	// asks no one, and only the CNI state and the netdevs tell.
	Pods PodLister
	// Force changes VFs that pods hold (see holders): for an administrator who has
	// drained the node.
	Force bool
	// Links sets MTUs in the current network namespace; nil skips MTUs (and dry runs
	// need none).
	Links Links
	// Timeout bounds each wait for the kernel (VFs to appear or go); default 20 s.
	Timeout time.Duration
	// Poll is the interval of those waits; default 20 ms.
	Poll time.Duration
}

// LeaveVFs is the VF count that leaves each PF's count as it is.
const LeaveVFs = -1

func (c *SetupConfig) defaults() error {
	if c.Sysfs == "" {
		c.Sysfs = sysfs.FromEnv()
	}
	if c.Driver == "" {
		c.Driver = vf.DriverCxgb4VF
	}
	if c.CNIStateDir == "" {
		c.CNIStateDir = cnistore.DefaultDir
	}
	if c.Timeout == 0 {
		c.Timeout = 20 * time.Second
	}
	if c.Poll == 0 {
		c.Poll = 20 * time.Millisecond
	}
	switch {
	case c.PF >= 4 && c.PF <= 7:
		return fmt.Errorf("PF%d has no SR-IOV: only PF0-PF3 create VFs (use --pf 0..3)", c.PF)
	case c.PF < 0 || c.PF > 7:
		return fmt.Errorf("invalid PF %d: only PF0-PF3 create VFs (use --pf 0..3)", c.PF)
	case c.VFs < LeaveVFs:
		return fmt.Errorf("invalid VF count %d: want 0 or more (0 removes the VFs)", c.VFs)
	case c.MTU != 0 && (c.MTU < 81 || c.MTU > 9600):
		return fmt.Errorf("invalid MTU %d: a Chelsio VF takes 81..9600", c.MTU)
	case !validDriver(c.Driver):
		return fmt.Errorf("invalid driver %q: want %s or %s", c.Driver, vf.DriverCxgb4VF, vf.DriverVFIO)
	}
	for i, d := range c.Drivers {
		if !validDriver(d) || i < 0 {
			return fmt.Errorf("invalid driver %q for VF %d: want %s or %s", d, i, vf.DriverCxgb4VF, vf.DriverVFIO)
		}
	}
	return nil
}

func validDriver(d string) bool { return d == vf.DriverCxgb4VF || d == vf.DriverVFIO }

// driverOf is the driver VF v is to be bound to.
func (c *SetupConfig) driverOf(v *vf.VF) string {
	if d, ok := c.Drivers[v.VFIndex]; ok {
		return d
	}
	return c.Driver
}

// Setup creates c.VFs VFs on PF c.PF of each selected adapter, after checking that
// PF4 is up as cxgb4 requires; sets c.MTU on the adapter's port netdevs and on every
// VF netdev; and binds the VFs to c.Driver. It is idempotent: what is already as
// asked is left alone. Progress lines, and with c.DryRun every write it would make
// (path and value), go to out. Kernel refusals are errors that say what the kernel
// refused and what to do.
func Setup(ctx context.Context, c SetupConfig, out io.Writer) error {
	if err := c.defaults(); err != nil {
		return err
	}
	n, err := vf.Discover(c.Sysfs, vf.Options{})
	if n == nil {
		return err
	}
	var adapters []*vf.Adapter
	for _, a := range n.Adapters {
		if c.Adapter == "" || c.Adapter == "all" || c.Adapter == a.Slot {
			adapters = append(adapters, a)
		}
	}
	if len(adapters) == 0 {
		if c.Adapter == "" || c.Adapter == "all" {
			return fmt.Errorf("no Chelsio adapter under %s: load cxgb4, or check --sysfs-root", c.Sysfs.Path("bus/pci/devices"))
		}
		return fmt.Errorf("no Chelsio adapter in slot %s under %s (see `chelsio-vf list`)", c.Adapter, c.Sysfs.Path("bus/pci/devices"))
	}
	s := &setup{c: c, out: out}
	for _, a := range adapters {
		if err := s.adapter(ctx, a); err != nil {
			return fmt.Errorf("adapter %s: %w", a.Slot, err)
		}
	}
	return nil
}

type setup struct {
	c   SetupConfig
	out io.Writer
}

func (s *setup) printf(format string, args ...any) { fmt.Fprintf(s.out, format+"\n", args...) }

// write writes value to the sysfs file rel, or, in a dry run, says it would.
func (s *setup) write(rel, value string) error {
	if s.c.DryRun {
		s.printf("would write %q to %s", value, s.c.Sysfs.Path(rel))
		return nil
	}
	s.printf("write %q to %s", value, s.c.Sysfs.Path(rel))
	return s.c.Sysfs.Write(rel, value)
}

// pf4Up checks that PF4 of a is bound to cxgb4 and has its port netdevs: cxgb4
// refuses to create VFs before (EOPNOTSUPP, "Device not initialized").
func pf4Up(a *vf.Adapter) error {
	addr := a.Slot + ".4"
	if a.PF4 != nil {
		addr = a.PF4.Addr.String()
	}
	if a.PF4 == nil || a.PF4.Driver != vf.DriverCxgb4 || len(a.PF4.Ports) == 0 {
		return fmt.Errorf("PF4 %s is not up: load cxgb4 and bring its ports up first", addr)
	}
	return nil
}

func (s *setup) adapter(ctx context.Context, a *vf.Adapter) error {
	c := s.c
	if err := pf4Up(a); err != nil {
		return err
	}
	pf, err := s.pf(a)
	if err != nil {
		return err
	}
	cur, err := numVFs(c.Sysfs, pf)
	if err != nil {
		return err
	}
	if c.VFs == LeaveVFs {
		c.VFs = cur
		s.c.VFs = cur
		defer func() { s.c.VFs = LeaveVFs }()
	}
	if err := s.checkHolders(ctx, pf, cur); err != nil {
		return err
	}
	if err := s.resize(ctx, pf, cur); err != nil {
		return err
	}
	replaced := c.DryRun && cur != c.VFs // the VFs there now would be replaced
	if replaced {
		s.sayWhatFollows()
	}
	// What is there now (or, in a dry run, what already was).
	vfs, ports, err := s.current(a.Slot, pf.Addr)
	if err != nil {
		return err
	}
	if replaced {
		vfs = nil
	}
	if err := s.setMTUs(ports, vfs); err != nil {
		return err
	}
	for _, v := range vfs {
		if err := s.bind(v); err != nil {
			return err
		}
	}
	if !c.DryRun {
		s.printf("PF%d %s: %d VFs ready", c.PF, pf.Addr, len(vfs))
	}
	return nil
}

// pf returns the PF of a that the config names, once it is known to take the VFs
// asked for.
func (s *setup) pf(a *vf.Adapter) (*vf.PF, error) {
	c := s.c
	var pf *vf.PF
	for _, p := range a.PFs {
		if p.Number == c.PF {
			pf = p
		}
	}
	if pf == nil {
		return nil, fmt.Errorf("PF%d %s.%d is missing: is the adapter's firmware config hiding it?", c.PF, a.Slot, c.PF)
	}
	if !pf.SRIOV && c.VFs > 0 {
		return nil, fmt.Errorf("PF%d %s has no SR-IOV (no sriov_totalvfs): the adapter's firmware config gives it no VFs; use a PF that has some (see `chelsio-vf list`)", c.PF, pf.Addr)
	}
	if pf.SRIOV && pf.Driver != vf.DriverCxgb4 {
		return nil, fmt.Errorf("PF%d %s is not bound to cxgb4 (it would refuse VFs with ENOENT): bind it with `echo %s > /sys/bus/pci/drivers/cxgb4/bind`", c.PF, pf.Addr, pf.Addr)
	}
	if c.VFs > pf.TotalVFs {
		return nil, fmt.Errorf("%d VFs on PF%d %s: more than its sriov_totalvfs %d (ERANGE); ask for at most %d", c.VFs, c.PF, pf.Addr, pf.TotalVFs, pf.TotalVFs)
	}
	return pf, nil
}

// checkHolders refuses, unless forced, to change the VF count of pf (which removes
// every VF it has: cxgb4 goes through 0) or to rebind a VF, while a pod holds one
// of the VFs concerned.
func (s *setup) checkHolders(ctx context.Context, pf *vf.PF, cur int) error {
	c := s.c
	var concerned []*vf.VF
	what := ""
	switch {
	case cur != c.VFs && cur > 0:
		concerned, what = pf.VFs, fmt.Sprintf("PF%d %s: %d VFs -> %d", c.PF, pf.Addr, cur, c.VFs)
	default:
		for _, v := range pf.VFs {
			if v.Driver != c.driverOf(v) {
				concerned = append(concerned, v)
			}
		}
		what = fmt.Sprintf("binding VFs of PF%d %s to other drivers", c.PF, pf.Addr)
	}
	if len(concerned) == 0 {
		return nil
	}
	hs, err := holders(ctx, c.CNIStateDir, c.Pods, concerned)
	switch {
	case err != nil && c.Force:
		s.printf("%s: forced, without knowing what holds its VFs: %v", what, err)
		return nil
	case err != nil:
		return fmt.Errorf("%s: %w (or pass --force after draining the node)", what, err)
	case len(hs) == 0:
		return nil
	}
	if c.Force {
		s.printf("%s: forced, although pods hold VFs: %v", what, heldError(what, hs))
		return nil
	}
	return heldError(what, hs)
}

// resize takes pf from cur VFs to the number asked for, through 0 when both are
// non-zero.
func (s *setup) resize(ctx context.Context, pf *vf.PF, cur int) error {
	c := s.c
	if cur == c.VFs {
		s.printf("PF%d %s: already %d VFs", c.PF, pf.Addr, cur)
		return nil
	}
	if cur != 0 && c.VFs != 0 {
		s.printf("PF%d %s: %d VFs -> %d: going through 0, as cxgb4 requires", c.PF, pf.Addr, cur, c.VFs)
		if err := s.setNumVFs(ctx, pf.Addr, 0); err != nil {
			return err
		}
	}
	return s.setNumVFs(ctx, pf.Addr, c.VFs)
}

// sayWhatFollows says, in a dry run that would create VFs, what would be done to
// them once they exist.
func (s *setup) sayWhatFollows() {
	c := s.c
	if c.MTU != 0 && c.VFs > 0 {
		s.printf("would set mtu %d on each new VF netdev of PF%d (ip link set <vf netdev> mtu %d)", c.MTU, c.PF, c.MTU)
	}
	if c.Driver != vf.DriverCxgb4VF && c.VFs > 0 {
		s.printf("would bind each new VF of PF%d to %s: write %q to %s, the VF address to %s and to %s",
			c.PF, c.Driver, c.Driver, c.Sysfs.Path("bus/pci/devices/<vf>/driver_override"),
			c.Sysfs.Path("bus/pci/devices/<vf>/driver/unbind"), c.Sysfs.Path("bus/pci/drivers/"+c.Driver+"/bind"))
	}
}

// setMTUs sets the configured MTU, if any, on the port netdevs and then on the VF
// netdevs.
func (s *setup) setMTUs(ports []vf.Port, vfs []*vf.VF) error {
	if s.c.MTU == 0 {
		return nil
	}
	var names []string
	for _, p := range ports {
		names = append(names, p.Netdev)
	}
	for _, v := range vfs {
		if v.Netdev != "" {
			names = append(names, v.Netdev)
		}
	}
	for _, name := range names {
		if err := s.setMTU(name); err != nil {
			return err
		}
	}
	return nil
}

// numVFs reads the PF's sriov_numvfs now; a PF without SR-IOV has no such file,
// and no VFs.
func numVFs(root sysfs.Root, pf *vf.PF) (int, error) {
	if !pf.SRIOV {
		return 0, nil
	}
	return root.ReadInt(vfDev(pf.Addr, "sriov_numvfs"))
}

func vfDev(addr vf.PCIAddr, file string) string {
	return "bus/pci/devices/" + addr.String() + "/" + file
}

// current reads the VFs of PF pfAddr and the port netdevs of the adapter in slot.
func (s *setup) current(slot string, pfAddr vf.PCIAddr) ([]*vf.VF, []vf.Port, error) {
	n, err := vf.Discover(s.c.Sysfs, vf.Options{})
	if n == nil {
		return nil, nil, err
	}
	for _, a := range n.Adapters {
		if a.Slot != slot {
			continue
		}
		var ports []vf.Port
		if a.PF4 != nil {
			ports = a.PF4.Ports
		}
		for _, p := range a.PFs {
			if p.Addr == pfAddr {
				return p.VFs, ports, nil
			}
		}
	}
	return nil, nil, fmt.Errorf("PF %s is no longer under %s after the sriov_numvfs write: check dmesg for cxgb4 errors", pfAddr, s.c.Sysfs.Path("bus/pci/devices"))
}

// setNumVFs writes n to the PF's sriov_numvfs, maps the kernel's refusals, and waits
// until the file reads n and the PF has n VFs (with their netdevs, on cxgb4vf).
func (s *setup) setNumVFs(ctx context.Context, pfAddr vf.PCIAddr, n int) error {
	c := s.c
	rel := vfDev(pfAddr, "sriov_numvfs")
	if err := s.write(rel, strconv.Itoa(n)); err != nil {
		return refused(pfAddr, n, err)
	}
	if c.DryRun {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	tick := time.NewTicker(c.Poll)
	defer tick.Stop()
	state := ""
	for {
		got, err := c.Sysfs.ReadInt(rel)
		switch {
		case err != nil:
			state = err.Error()
		case got != n:
			return fmt.Errorf("PF %s: the kernel kept sriov_numvfs at %d after the write of %d: a VF may be assigned to a guest, or the write was refused (see dmesg); free the VFs and retry", pfAddr, got, n)
		default:
			var ok bool
			ok, state = s.vfsReady(pfAddr, n)
			if ok {
				if n == 0 {
					s.printf("PF %s: VFs removed", pfAddr)
				} else {
					s.printf("PF %s: %d VFs created", pfAddr, n)
				}
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("PF %s: %d VFs did not appear within %v (%s): check dmesg for cxgb4/cxgb4vf errors", pfAddr, n, c.Timeout, state)
		case <-tick.C:
		}
	}
}

// vfsReady reports whether the PF has n VFs, each VF on cxgb4vf with its netdev
// (present in this network namespace, when Links is set).
func (s *setup) vfsReady(pfAddr vf.PCIAddr, n int) (bool, string) {
	v, err := vf.Discover(s.c.Sysfs, vf.Options{})
	if v == nil {
		return false, err.Error()
	}
	for _, a := range v.Adapters {
		for _, p := range a.PFs {
			if p.Addr != pfAddr {
				continue
			}
			if len(p.VFs) != n {
				return false, fmt.Sprintf("%d VFs so far", len(p.VFs))
			}
			for _, x := range p.VFs {
				if x.Driver != vf.DriverCxgb4VF {
					continue
				}
				if x.Netdev == "" {
					return false, fmt.Sprintf("VF %s has no netdev yet", x.Addr)
				}
				if s.c.Links != nil {
					if _, err := s.c.Links.LinkByName(x.Netdev); err != nil {
						return false, fmt.Sprintf("VF %s: netdev %s: %v", x.Addr, x.Netdev, err)
					}
				}
			}
			return true, ""
		}
	}
	return false, "PF not found"
}

// refused turns the kernel's refusal of a write of n to the PF's sriov_numvfs into a
// message that says what the kernel refused and what to do.
func refused(pfAddr vf.PCIAddr, n int, err error) error {
	what := fmt.Sprintf("the kernel refused %d VFs on PF %s", n, pfAddr)
	switch {
	case errors.Is(err, syscall.EOPNOTSUPP):
		return fmt.Errorf("%s: firmware not initialised, PF4 is not up (EOPNOTSUPP): load cxgb4 and bring its ports up first: %w", what, err)
	case errors.Is(err, errnoENOTSUPP):
		return fmt.Errorf("%s: the parent PCIe bridge lacks ARI (errno 524): enable ARI in the BIOS or move the adapter to a slot whose root port has it: %w", what, err)
	case errors.Is(err, syscall.ERANGE):
		return fmt.Errorf("%s: more than sriov_totalvfs (ERANGE): ask for at most sriov_totalvfs: %w", what, err)
	case errors.Is(err, syscall.EBUSY):
		return fmt.Errorf("%s: VFs exist already (EBUSY): write 0 first, after freeing the VFs: %w", what, err)
	case errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("%s: the PF is not bound to cxgb4 (ENOENT): bind it to cxgb4 first: %w", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// setMTU sets the MTU of a netdev of this network namespace unless it has it.
// Equivalent to: ip link set NAME mtu MTU
func (s *setup) setMTU(name string) error {
	c := s.c
	if cur, err := c.Sysfs.ReadInt("class/net/" + name + "/mtu"); err == nil && cur == c.MTU {
		s.printf("%s: mtu already %d", name, c.MTU)
		return nil
	}
	if c.DryRun {
		s.printf("would set mtu %d on %s (ip link set %s mtu %d)", c.MTU, name, name, c.MTU)
		return nil
	}
	if c.Links == nil {
		return fmt.Errorf("set mtu %d on %s: no netlink handle", c.MTU, name)
	}
	l, err := c.Links.LinkByName(name)
	if err != nil {
		return fmt.Errorf("set mtu %d on %s: %w", c.MTU, name, err)
	}
	if l.Attrs().MTU == c.MTU {
		s.printf("%s: mtu already %d", name, c.MTU)
		return nil
	}
	if err := c.Links.LinkSetMTU(l, c.MTU); err != nil {
		return fmt.Errorf("set mtu %d on %s: %w", c.MTU, name, err)
	}
	s.printf("%s: mtu %d", name, c.MTU)
	return nil
}

// bind binds a VF to the wanted driver, unless it is bound to it: driver_override
// names the driver, then the VF is unbound from its driver and bound to the new one.
// Equivalent to:
//
//	echo DRIVER > /sys/bus/pci/devices/VF/driver_override
//	echo VF > /sys/bus/pci/devices/VF/driver/unbind
//	echo VF > /sys/bus/pci/drivers/DRIVER/bind
func (s *setup) bind(v *vf.VF) error {
	c := s.c
	driver := c.driverOf(v)
	if v.Driver == driver {
		return nil
	}
	a := v.Addr.String()
	if err := s.write(vfDev(v.Addr, "driver_override"), driver); err != nil {
		return fmt.Errorf("bind VF %s to %s: %w", a, driver, err)
	}
	if v.Driver != "" {
		if err := s.write(vfDev(v.Addr, "driver/unbind"), a); err != nil {
			return fmt.Errorf("unbind VF %s from %s: %w", a, v.Driver, err)
		}
	}
	if err := s.write("bus/pci/drivers/"+driver+"/bind", a); err != nil {
		hint := ""
		if driver == vf.DriverVFIO {
			hint = " (is vfio-pci loaded and the IOMMU on?)"
		}
		return fmt.Errorf("bind VF %s to %s%s: %w", a, driver, hint, err)
	}
	if !c.DryRun {
		s.printf("VF %s: bound to %s", a, driver)
	}
	return nil
}
