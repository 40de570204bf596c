package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cnistore"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/cut"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// lookupVF finds the VF of the NetConf and refuses what cannot be attached.
func (p *Plugin) lookupVF(c *NetConf) (*vf.VF, error) {
	if c.VF.IsZero() {
		return nil, configError("no VF given: set \"deviceID\" (or \"pciBusID\", or runtimeConfig.deviceID through the deviceID capability); with Multus, annotate the NetworkAttachmentDefinition with k8s.v1.cni.cncf.io/resourceName")
	}
	v, err := vf.LookupVF(p.Root, c.VF, vf.Options{})
	switch {
	case errors.Is(err, vf.ErrNotChelsioVF):
		return nil, configError("deviceID %s: %v: give the PCI address of a Chelsio VF (chelsio-vf list shows them)", c.VF, err)
	case isNotExist(err):
		return nil, configError("deviceID %s: no such PCI device in %s: the VF is gone or the address is wrong (chelsio-vf list shows the VFs)", c.VF, p.Root.Path("bus/pci/devices"))
	case err != nil:
		return nil, withCode(CodeIOFailure, fmt.Errorf("deviceID %s: %w", c.VF, err))
	}
	switch v.Driver {
	case vf.DriverCxgb4VF, vf.DriverVFIO:
	case "":
		return nil, configError("deviceID %s: the VF is bound to no driver; bind it to cxgb4vf (kernel netdev) or vfio-pci (DPDK)", c.VF)
	default:
		return nil, configError("deviceID %s: the VF is bound to %s; chelsio-sriov takes cxgb4vf (kernel netdev) or vfio-pci (DPDK) VFs", c.VF, v.Driver)
	}
	if c.HasPFSettings() && v.MgmtNetdev == "" {
		return nil, configError("deviceID %s: VF-level settings (vlan, mac, max_tx_rate, link_state) go through the PF's management netdev, and %s has none: remove those keys, or use a kernel whose cxgb4 has one (Linux 4.9 or later) and leave it in the host namespace", c.VF, p.Root.Path("bus/pci/devices", v.PF.String(), "net"))
	}
	if c.MaxTxRate != nil && *c.MaxTxRate > 0 {
		if err := p.checkRate(v, *c.MaxTxRate); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// checkRate refuses what cxgb4 refuses for max_tx_rate: port link down, or a rate
// above the port's speed.
func (p *Plugin) checkRate(v *vf.VF, rate int) error {
	pf4 := v.PF
	pf4.Function = 4
	names, err := p.Root.ReadDir("bus/pci/devices/" + pf4.String() + "/net")
	if err != nil {
		return nil // no port netdevs to judge by: let cxgb4 decide
	}
	for _, n := range names {
		base := "bus/pci/devices/" + pf4.String() + "/net/" + n + "/"
		dp, err := p.Root.ReadInt(base + "dev_port")
		if err != nil || dp != v.Port {
			continue
		}
		if c, err := p.Root.ReadString(base + "carrier"); err == nil && c != "1" {
			return configError("\"max_tx_rate\" %d: cxgb4 needs the port's link up, and port %d (%s) is down", rate, v.Port, n)
		}
		if sp, err := p.Root.ReadInt(base + "speed"); err == nil && sp > 0 && rate > sp {
			return configError("\"max_tx_rate\" %d is above the speed of port %d (%s): %d Mbps", rate, v.Port, n, sp)
		}
	}
	return nil
}

// Add attaches the VF to the pod and returns the result, in the NetConf's version.
func (p *Plugin) Add(args *skel.CmdArgs) (_ types.Result, retErr error) {
	if len(args.StdinData) > MaxNetConf {
		return nil, configError("the network config is %d bytes: chelsio-sriov records it for DEL and takes at most %d", len(args.StdinData), MaxNetConf)
	}
	inv, err := p.begin(args, "ADD")
	if err != nil {
		return nil, err
	}
	defer inv.close()
	c, log := inv.conf, inv.log
	defer func() {
		if retErr != nil {
			log.Error("ADD failed", "err", retErr)
		}
	}()
	if err := cnistore.CheckKey(args.ContainerID, args.IfName); err != nil {
		return nil, err
	}
	v, err := p.lookupVF(c)
	if err != nil {
		return nil, err
	}
	dpdk := v.IsVFIO()
	log = log.With("vf", v.Addr.String())
	if err := inv.store.Ensure(); err != nil {
		return nil, err
	}
	unlock, err := inv.store.Lock(v.Addr.String(), p.LockTimeout)
	if err != nil {
		return nil, err
	}
	defer unlock()

	tookOver, err := p.checkOwner(inv, v, args)
	if err != nil {
		return nil, err
	}
	if tookOver {
		// The previous attachment's VF was restored: read it again.
		if v, err = p.lookupVF(c); err != nil {
			return nil, err
		}
	}
	host, releaseHost, err := p.hostNS()
	if err != nil {
		return nil, err
	}
	defer releaseHost()

	var pod ns.NetNS
	if !dpdk {
		p, err := openPodNSOf(args.Netns, host)
		if err != nil {
			return nil, err
		}
		pod = p
		defer pod.Close()
	}

	a := &cnistore.Attachment{
		ContainerID: args.ContainerID, IfName: args.IfName, Netns: args.Netns, Network: c.Name,
		VF: v.Addr.String(), Phase: cnistore.PhaseAdding, DPDK: dpdk, IPAMType: c.IPAMType,
		NetConf: json.RawMessage(c.Raw), Created: time.Now().UTC(),
	}
	var hostLink netlink.Link
	var podH *netlink.Handle
	if !dpdk {
		err := inNS(host, func(h *netlink.Handle) error {
			hostLink = p.findHostLink(host, h, v)
			if hostLink == nil {
				return fmt.Errorf("deviceID %s: the VF netdev is not in the host namespace (still in another pod, or on its way back); try again", v.Addr)
			}
			return nil
		})
		if err != nil {
			return nil, withCode(CodeTryAgainLater, err)
		}
		at := hostLink.Attrs()
		a.HostName, a.HostMTU, a.HostMAC = at.Name, at.MTU, at.HardwareAddr.String()
		// The move keeps the ifindex when the pod has it free, as a fresh pod does:
		// recorded before the move, so that a DEL after a crash mid-ADD knows the VF.
		a.PodIfindex = at.Index
		// One netlink socket in the pod serves every step there.
		if podH, err = handleIn(pod); err != nil {
			return nil, err
		}
		defer podH.Close()
		// The spec: ADD fails if the pod already has an interface of that name.
		if _, err := podH.LinkByName(args.IfName); err == nil {
			return nil, configError("CNI_IFNAME %s: the pod already has an interface of that name", args.IfName)
		}
	}
	mgmt := vf.NewMgmt(p.Root)
	if c.HasPFSettings() {
		orig, err := mgmt.VFConfig(v.MgmtNetdev, v.VFIndex)
		if err != nil {
			return nil, fmt.Errorf("read the VF's PF-side config: %w", err)
		}
		a.PF = &cnistore.PFState{
			Mgmt: v.MgmtNetdev, VFIndex: v.VFIndex, Orig: orig,
			SetVLAN: c.VLAN != nil, SetMAC: c.PodMAC != nil, SetRate: c.MaxTxRate != nil, SetState: c.State != "",
		}
	}

	// From here on every change has its undo, run in reverse order on failure.
	var undo []func() error
	defer func() {
		if retErr == nil {
			return
		}
		var errs []error
		for i := len(undo) - 1; i >= 0; i-- {
			if err := undo[i](); err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			retErr = fmt.Errorf("%w; undoing the ADD also failed: %w", retErr, errors.Join(errs...))
		} else {
			log.Info("ADD undone", "err", retErr)
		}
	}()
	step := func(name string, undoFn func() error) error {
		if undoFn != nil {
			undo = append(undo, undoFn)
		}
		return p.fault(name)
	}

	if err := inv.store.SaveAttachment(a); err != nil {
		return nil, err
	}
	if err := step(StepState, func() error { return inv.store.RemoveAttachment(a.ContainerID, a.IfName, a.VF) }); err != nil {
		return nil, err
	}

	if pf := a.PF; pf != nil {
		if pf.SetVLAN {
			if err := mgmt.SetVFVLAN(pf.Mgmt, pf.VFIndex, *c.VLAN); err != nil {
				return nil, fmt.Errorf("\"vlan\" %d: %w", *c.VLAN, err)
			}
			if err := step(StepPFVLAN, func() error { return mgmt.SetVFVLAN(pf.Mgmt, pf.VFIndex, pf.Orig.VLAN) }); err != nil {
				return nil, err
			}
		}
		if pf.SetMAC {
			if err := mgmt.SetVFMAC(pf.Mgmt, pf.VFIndex, c.PodMAC); err != nil {
				hint := ""
				if v.PFNumber >= 2 {
					hint = " (kernels 5.9-6.12 without commit 356983f569c1 cannot set the MAC of VFs of PF2/PF3)"
				}
				return nil, fmt.Errorf("MAC %s: %w%s", c.PodMAC, err, hint)
			}
			if err := step(StepPFMAC, func() error { return restorePFMAC(mgmt, pf) }); err != nil {
				return nil, err
			}
		}
		if pf.SetRate {
			if err := mgmt.SetVFRate(pf.Mgmt, pf.VFIndex, *c.MaxTxRate); err != nil {
				return nil, fmt.Errorf("\"max_tx_rate\" %d: %w", *c.MaxTxRate, err)
			}
			if err := step(StepPFRate, func() error { return mgmt.SetVFRate(pf.Mgmt, pf.VFIndex, pf.Orig.MaxTxRate) }); err != nil {
				return nil, err
			}
		}
		if pf.SetState {
			if err := mgmt.SetVFLinkState(pf.Mgmt, pf.VFIndex, c.State); err != nil {
				return nil, fmt.Errorf("\"link_state\" %s: %w", c.State, err)
			}
			if err := step(StepPFState, func() error { return mgmt.SetVFLinkState(pf.Mgmt, pf.VFIndex, orState(pf.Orig.LinkState)) }); err != nil {
				return nil, err
			}
		}
	}

	// An IPAM plugin that needs no interface (host-local, static, whereabouts) runs
	// while the netdev moves: the move is the kernel's slowest step (an RCU grace
	// period), and the two do not depend on each other. Others (dhcp) run after.
	var ipamWait func() (types.Result, error)
	if c.IPAMType != "" && ipamWithoutInterface[c.IPAMType] {
		ch := make(chan ipamOut, 1)
		go func() {
			r, err := p.execIPAM("ADD", c.IPAMType, c.Raw, args)
			ch <- ipamOut{r, err}
		}()
		var once sync.Once
		var out ipamOut
		ipamWait = func() (types.Result, error) {
			once.Do(func() { out = <-ch })
			return out.r, out.err
		}
		undo = append(undo, func() error {
			if _, err := ipamWait(); errors.Is(err, errIPAMMissing) {
				return nil // nothing ran, nothing was allocated
			}
			// A failed ADD may have allocated before it failed (a result it could
			// not print, a timeout): IPAM DEL frees what there is, and nothing else.
			_, err := p.execIPAM("DEL", c.IPAMType, c.Raw, args)
			return err
		})
	}

	result := &current.Result{CNIVersion: current.ImplementedSpecVersion, DNS: c.DNS}
	iface := &current.Interface{Name: args.IfName, PciID: v.Addr.String()}
	if !dpdk {
		iface.Sandbox = args.Netns
		if err := p.moveIn(host, pod, podH, hostLink.Attrs().Index, v.Addr, a, args.IfName); err != nil {
			return nil, err
		}
		if a.PodIfindex != hostLink.Attrs().Index {
			// The pod had that ifindex taken: record the one the VF got.
			if err := inv.store.SaveAttachment(a); err != nil {
				return nil, errors.Join(err, p.moveBack(pod, host, v.Addr, a, nil))
			}
		}
		if err := step(StepMove, func() error { return p.moveBack(pod, host, v.Addr, a, nil) }); err != nil {
			return nil, err
		}
		err := func(h *netlink.Handle) error {
			l, err := h.LinkByIndex(a.PodIfindex)
			if err != nil {
				return fmt.Errorf("find %s in the pod: %w", args.IfName, err)
			}
			iface.Mac, iface.Mtu = l.Attrs().HardwareAddr.String(), l.Attrs().MTU
			if c.MTU != nil && *c.MTU != l.Attrs().MTU {
				if err := h.LinkSetMTU(l, *c.MTU); err != nil {
					return fmt.Errorf("\"mtu\" %d: set on %s: %w", *c.MTU, args.IfName, err)
				}
				// Undone by moveBack, which restores the host MTU.
				iface.Mtu = *c.MTU
			}
			if err := step(StepMTU, nil); err != nil {
				return err
			}
			if c.PodMAC != nil {
				if err := h.LinkSetHardwareAddr(l, c.PodMAC); err != nil {
					return fmt.Errorf("MAC %s: set on %s: %w", c.PodMAC, args.IfName, err)
				}
				iface.Mac = c.PodMAC.String()
			}
			if err := step(StepMAC, nil); err != nil {
				return err
			}
			if err := h.LinkSetUp(l); err != nil {
				return fmt.Errorf("set %s up: %w", args.IfName, err)
			}
			return step(StepUp, nil)
		}(podH)
		if err != nil {
			return nil, err
		}
	} else if c.PodMAC != nil {
		iface.Mac = c.PodMAC.String()
	}
	result.Interfaces = []*current.Interface{iface}

	if c.IPAMType != "" {
		var r types.Result
		var ipamUndo func() error
		if ipamWait != nil {
			r, err = ipamWait() // its undo is registered already
		} else {
			r, err = p.execIPAM("ADD", c.IPAMType, c.Raw, args)
			if !errors.Is(err, errIPAMMissing) {
				// Also after a failed ADD, which may have allocated before it failed.
				undo = append(undo, func() error {
					_, err := p.execIPAM("DEL", c.IPAMType, c.Raw, args)
					return err
				})
			}
		}
		if err != nil {
			return nil, err
		}
		if err := step(StepIPAM, ipamUndo); err != nil {
			return nil, err
		}
		ir, err := current.NewResultFromResult(r)
		if err != nil {
			return nil, fmt.Errorf("IPAM %s result: %w", c.IPAMType, err)
		}
		if len(ir.IPs) == 0 {
			return nil, fmt.Errorf("IPAM %s returned no IP address", c.IPAMType)
		}
		zero := 0
		for _, ip := range ir.IPs {
			ip.Interface = &zero
		}
		result.IPs, result.Routes = ir.IPs, ir.Routes
		if len(ir.DNS.Nameservers) > 0 || ir.DNS.Domain != "" {
			result.DNS = ir.DNS
		}
		if !dpdk {
			if err := configureAddresses(pod, podH, args.IfName, result); err != nil {
				return nil, fmt.Errorf("configure addresses of %s: %w", args.IfName, err)
			}
			// Addresses and routes go with the netdev when moveBack moves it out.
			if err := step(StepAddresses, nil); err != nil {
				return nil, err
			}
		}
	}

	rb, err := json.Marshal(result)
	if err != nil {
		return nil, err
	}
	a.Phase, a.Result = cnistore.PhaseAttached, rb
	if err := inv.store.SaveAttachment(a); err != nil {
		return nil, err
	}
	if err := step(StepAttached, nil); err != nil {
		return nil, err
	}
	log.Info("attached", "netdev", a.HostName, "dpdk", dpdk, "mtu", iface.Mtu, "mac", iface.Mac)
	if c.CNIVersion == "" || c.CNIVersion == current.ImplementedSpecVersion {
		return result, nil
	}
	out, err := result.GetAsVersion(c.CNIVersion)
	if err != nil {
		return nil, withCode(types.ErrIncompatibleCNIVersion, fmt.Errorf("convert the result to cniVersion %s: %w", c.CNIVersion, err))
	}
	// types/100 converts 1.1.0 to 1.0.0 by relabelling only: drop the interface
	// fields that 1.1.0 added (mtu, socketPath, pciID).
	if r, ok := out.(*current.Result); ok && r.CNIVersion == "1.0.0" {
		ifs := make([]*current.Interface, len(r.Interfaces))
		for i, in := range r.Interfaces {
			cp := *in
			cp.Mtu, cp.SocketPath, cp.PciID = 0, "", ""
			ifs[i] = &cp
		}
		r.Interfaces = ifs
	}
	return out, nil
}

// ipamWithoutInterface lists IPAM plugins that allocate without looking at the
// interface, so that ADD can run them while the netdev moves.
var ipamWithoutInterface = map[string]bool{"host-local": true, "static": true, "whereabouts": true}

type ipamOut struct {
	r   types.Result
	err error
}

// findHostLink returns the VF's netdev in the host namespace n (h's): the one
// sysfs lists under the VF, unless the kernel or, on an emulated node, its
// alternative name says it is another device's; else the link that the kernel or
// the alternative name says is the VF. nil when it is not there.
func (p *Plugin) findHostLink(n ns.NetNS, h *netlink.Handle, v *vf.VF) netlink.Link {
	if v.Netdev != "" {
		if l, err := h.LinkByName(v.Netdev); err == nil && p.hostLinkIsVFOrUnknown(n, l, v.Addr) {
			return l
		}
	}
	links, err := h.LinkList()
	if err != nil {
		return nil
	}
	for _, l := range links {
		if p.hostLinkIsVF(n, l, v.Addr) {
			return l
		}
	}
	return nil
}

// hostLinkIsVFOrUnknown accepts a host link that is the VF, or of which neither
// the kernel nor an emulated alternative name says anything: sysfs named it.
func (p *Plugin) hostLinkIsVFOrUnknown(n ns.NetNS, l netlink.Link, addr vf.PCIAddr) bool {
	if dev := p.device(n, l); dev != "" {
		return dev == addr.String()
	}
	if emu := p.emulatedAddr(l); emu != "" {
		return emu == addr.String()
	}
	return true
}

// moveIn moves the VF's netdev (ifindex hostIdx in the host) into the pod as
// ifName, and sets a.PodIfindex to its ifindex there. When the kernel moves it
// but refuses the name in the pod ("all" and "default" collide with its per-netns
// sysctl directories), the VF is moved back under its host name: nothing is left
// in the pod.
func (p *Plugin) moveIn(host, pod ns.NetNS, podH *netlink.Handle, hostIdx int, addr vf.PCIAddr, a *cnistore.Attachment, ifName string) error {
	moveErr := moveLink(host, hostIdx, pod, ifName)
	if moveErr != nil {
		// The kernel keeps the ifindex when the pod has it free. Where the kernel does
		// not name the device under a link, only an emulated VF's alternative name
		// together with that ifindex identifies it: a real node's cxgb4vf always
		// reports its PCI address.
		guess := 0
		if p.emulated() {
			guess = hostIdx
		}
		l, err := p.findPodVF(pod, podH, addr, guess)
		if err != nil || l == nil {
			return errors.Join(moveErr, err)
		}
		if err := moveLink(pod, l.Attrs().Index, host, a.HostName); err != nil {
			return fmt.Errorf("%w; the VF moved into the pod as %s, and moving it back as %s failed: %w", moveErr, l.Attrs().Name, a.HostName, err)
		}
		return withCode(CodeInvalidEnv, fmt.Errorf("CNI_IFNAME %s: the kernel refuses the name in the pod (%w): the VF is back in the host", cut.Quote(ifName), moveErr))
	}
	l, err := podH.LinkByName(ifName)
	if err != nil {
		return fmt.Errorf("find %s in the pod: %w", ifName, err)
	}
	if dev := p.device(pod, l); dev != "" && dev != addr.String() {
		return fmt.Errorf("%s in the pod is device %s, not VF %s", ifName, dev, addr)
	}
	a.PodIfindex = l.Attrs().Index
	return nil
}

// orState maps an unreported link state to auto, cxgb4's default.
func orState(s vf.LinkState) vf.LinkState {
	if s == "" {
		return vf.LinkStateAuto
	}
	return s
}

// restorePFMAC gives the VF back its original PF-side MAC; cxgb4 cannot clear one,
// so an original of none (or zero) is left as set.
func restorePFMAC(m vf.Mgmt, pf *cnistore.PFState) error {
	hw, err := net.ParseMAC(pf.Orig.MAC)
	if err != nil || vf.ValidateMAC(hw) != nil {
		return nil
	}
	return m.SetVFMAC(pf.Mgmt, pf.VFIndex, hw)
}

// checkOwner refuses a VF that another live attachment holds. A VF whose previous
// pod is gone without a DEL is taken over: first given back as that attachment
// found it, so that this ADD records the VF's true original state.
func (p *Plugin) checkOwner(inv *invocation, v *vf.VF, args *skel.CmdArgs) (bool, error) {
	o, err := inv.store.Owner(v.Addr.String())
	if isNotExist(err) {
		return false, nil
	}
	if cnistore.IsCorrupt(err) {
		// Truncated by a power loss (the state is not synced): it names no one.
		inv.log.Warn("VF owner record unreadable; taking the VF as free", "vf", v.Addr.String(), "err", err)
		if err := inv.store.DropCorruptOwner(v.Addr.String()); err != nil {
			return false, withCode(CodeIOFailure, err)
		}
		return false, nil
	}
	if err != nil {
		return false, withCode(CodeIOFailure, err)
	}
	if o.ContainerID == args.ContainerID && o.IfName == args.IfName {
		if a, err := inv.store.LoadAttachment(args.ContainerID, args.IfName); err == nil && a.Phase == cnistore.PhaseAttached {
			return false, configError("container %s already has %s attached as %s; DEL it first", args.ContainerID, v.Addr, args.IfName)
		}
		return false, nil // a failed or interrupted ADD of this attachment: start over
	}
	if alive(o.Netns) {
		return false, withCode(CodeVFBusy, fmt.Errorf("deviceID %s is attached to container %s as %s (netns %s); refusing to take it", v.Addr, o.ContainerID, o.IfName, o.Netns))
	}
	inv.log.Warn("taking over a VF whose previous pod is gone", "previous", o.ContainerID, "netns", o.Netns)
	old, err := inv.store.LoadAttachment(o.ContainerID, o.IfName)
	if err != nil {
		return false, nil // no record of what it was: take it as it is
	}
	prev := &skel.CmdArgs{ContainerID: old.ContainerID, IfName: old.IfName, Netns: old.Netns}
	if err := p.restoreVF(inv, prev, v.Addr, old); err != nil {
		if errors.Is(err, errVFMissing) {
			return false, withCode(CodeTryAgainLater, fmt.Errorf("deviceID %s: its netdev has not come back from container %s's namespace yet; try again", v.Addr, o.ContainerID))
		}
		return false, fmt.Errorf("give %s back from container %s first: %w", v.Addr, o.ContainerID, err)
	}
	// The old attachment's state stays for its own DEL (or GC), which frees its lease
	// and, seeing the VF is ours now, leaves the VF alone.
	return true, nil
}

// alive reports whether a netns path still names a network namespace.
func alive(path string) bool {
	if path == "" {
		return false
	}
	if _, err := os.Stat(path); err != nil {
		return false
	}
	n, err := ns.GetNS(path)
	if err != nil {
		return false
	}
	_ = n.Close()
	return true
}

// errNotInPod reports a VF that moveBack did not find in the pod.
var errNotInPod = errors.New("VF not in the pod")

// moveBack returns the VF netdev from the pod to the host, with the host name, MTU
// and MAC it had, admin down. The netdev is found by identity (findPodVF), never by
// a name the pod can change; errNotInPod when it is not there. An attachment
// without a host name (no state) gets the name the kernel would give it.
func (p *Plugin) moveBack(pod, host ns.NetNS, addr vf.PCIAddr, a *cnistore.Attachment, fault func(string) error) error {
	if fault == nil {
		fault = func(string) error { return nil }
	}
	var idx int
	var podName string
	err := inNS(pod, func(h *netlink.Handle) error {
		l, err := p.findPodVF(pod, h, addr, a.PodIfindex)
		if err != nil {
			return fmt.Errorf("list links of the pod: %w", err)
		}
		if l == nil {
			return errNotInPod
		}
		idx, podName = l.Attrs().Index, l.Attrs().Name
		return restoreLink(h, l, a)
	})
	if err != nil {
		return err
	}
	if err := fault(StepDelLink); err != nil {
		return err
	}
	name := a.HostName
	if name == "" {
		if err := inNS(host, func(h *netlink.Handle) error { name = freeName(h, podName); return nil }); err != nil {
			return err
		}
	}
	if err := moveLink(pod, idx, host, name); err != nil {
		return err
	}
	return fault(StepDelMove)
}

// restoreLink sets a link down and gives it the host MTU and MAC of the attachment.
func restoreLink(h *netlink.Handle, l netlink.Link, a *cnistore.Attachment) error {
	var errs []error
	if err := h.LinkSetDown(l); err != nil {
		errs = append(errs, fmt.Errorf("set %s down: %w", l.Attrs().Name, err))
	}
	if a.HostMTU > 0 && l.Attrs().MTU != a.HostMTU {
		if err := h.LinkSetMTU(l, a.HostMTU); err != nil {
			errs = append(errs, fmt.Errorf("restore MTU %d of %s: %w", a.HostMTU, l.Attrs().Name, err))
		}
	}
	if hw, err := net.ParseMAC(a.HostMAC); err == nil && !strings.EqualFold(l.Attrs().HardwareAddr.String(), a.HostMAC) {
		if err := h.LinkSetHardwareAddr(l, hw); err != nil {
			errs = append(errs, fmt.Errorf("restore MAC %s of %s: %w", a.HostMAC, l.Attrs().Name, err))
		}
	}
	return errors.Join(errs...)
}
