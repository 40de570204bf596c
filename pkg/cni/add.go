package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
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
// It goes as the CNI spec describes an ADD: preflight (nothing changes until every
// check has passed), the attachment's record, the PF-side settings, the netdev
// moved into the pod and configured there, IPAM, and the result. Every change has
// its undo, run in reverse order when a later step fails.
func (p *Plugin) Add(args *skel.CmdArgs) (_ types.Result, retErr error) {
	if len(args.StdinData) > MaxNetConf {
		return nil, configError("the network config is %d bytes: chelsio-sriov records it for DEL and takes at most %d", len(args.StdinData), MaxNetConf)
	}
	inv, err := p.begin(args, "ADD")
	if err != nil {
		return nil, err
	}
	defer inv.close()
	ad := &addition{p: p, inv: inv, args: args, c: inv.conf, log: inv.log}
	defer func() {
		if retErr != nil {
			ad.log.Error("ADD failed", "err", retErr)
		}
	}()
	defer ad.close()
	if err := ad.preflight(); err != nil {
		return nil, err
	}
	defer ad.rollback(&retErr)
	if err := ad.record(); err != nil {
		return nil, err
	}
	if err := ad.setPF(); err != nil {
		return nil, err
	}
	ad.startIPAM()
	if err := ad.attachInPod(); err != nil {
		return nil, err
	}
	if err := ad.ipam(); err != nil {
		return nil, err
	}
	return ad.finish()
}

// addition is one ADD under way: what preflight found and opened, the attachment's
// record, the result so far, and the undo of every change made.
type addition struct {
	p    *Plugin
	inv  *invocation
	args *skel.CmdArgs
	c    *NetConf
	log  *slog.Logger

	v        *vf.VF
	dpdk     bool            // a vfio-pci VF: no netdev, nothing in the pod
	mgmt     vf.Mgmt         // the PF-side settings go through it
	host     ns.NetNS        // the node's network namespace
	pod      ns.NetNS        // CNI_NETNS (nil for DPDK)
	podH     *netlink.Handle // one netlink socket in the pod serves every step there
	hostLink netlink.Link    // the VF netdev in the host, as preflight found it
	a        *cnistore.Attachment

	result   *current.Result
	iface    *current.Interface
	ipamWait func() (types.Result, error) // IPAM ADD started while the netdev moves

	closers []func()       // what preflight opened, released by close
	undo    []func() error // the undo of each change, run in reverse by rollback
}

// preflight finds and checks everything the ADD needs before it changes anything:
// the VF, the state directory and the VF's lock, the VF's owner (taking over a VF
// whose pod is gone), the namespaces and, for a netdev, the VF's link in the host
// and a free CNI_IFNAME in the pod, and the PF-side config that DEL restores.
func (ad *addition) preflight() error {
	p, args := ad.p, ad.args
	if err := cnistore.CheckKey(args.ContainerID, args.IfName); err != nil {
		return err
	}
	v, err := p.lookupVF(ad.c)
	if err != nil {
		return err
	}
	ad.v, ad.dpdk = v, v.IsVFIO()
	ad.log = ad.log.With("vf", v.Addr.String())
	if err := ad.inv.store.Ensure(); err != nil {
		return err
	}
	unlock, err := ad.inv.store.Lock(v.Addr.String(), p.LockTimeout)
	if err != nil {
		return err
	}
	ad.closers = append(ad.closers, unlock)
	tookOver, err := p.checkOwner(ad.inv, v, args)
	if err != nil {
		return err
	}
	if tookOver {
		// The previous attachment's VF was restored: read it again.
		if ad.v, err = p.lookupVF(ad.c); err != nil {
			return err
		}
	}
	host, releaseHost, err := p.hostNS()
	if err != nil {
		return err
	}
	ad.host = host
	ad.closers = append(ad.closers, releaseHost)
	if !ad.dpdk {
		if err := ad.findLinks(); err != nil {
			return err
		}
	}
	ad.a = ad.attachment()
	return ad.readPF()
}

// findLinks opens the pod's namespace, finds the VF's netdev in the host's and
// refuses a pod that already has an interface named CNI_IFNAME.
func (ad *addition) findLinks() error {
	pod, err := openPodNSOf(ad.args.Netns, ad.host)
	if err != nil {
		return err
	}
	ad.pod = pod
	ad.closers = append(ad.closers, func() { _ = pod.Close() })
	err = inNS(ad.host, func(h *netlink.Handle) error {
		ad.hostLink = ad.p.findHostLink(ad.host, h, ad.v)
		if ad.hostLink == nil {
			return fmt.Errorf("deviceID %s: the VF netdev is not in the host namespace (still in another pod, or on its way back); try again", ad.v.Addr)
		}
		return nil
	})
	if err != nil {
		return withCode(CodeTryAgainLater, err)
	}
	if ad.podH, err = handleIn(pod); err != nil {
		return err
	}
	ad.closers = append(ad.closers, ad.podH.Close)
	// The spec: ADD fails if the pod already has an interface of that name.
	if _, err := ad.podH.LinkByName(ad.args.IfName); err == nil {
		return configError("CNI_IFNAME %s: the pod already has an interface of that name", ad.args.IfName)
	}
	return nil
}

// attachment is the attachment's record as ADD starts it: the VF netdev as
// preflight found it in the host, the NetConf (IPAM DEL gets it again).
func (ad *addition) attachment() *cnistore.Attachment {
	args, c := ad.args, ad.c
	a := &cnistore.Attachment{
		ContainerID: args.ContainerID, IfName: args.IfName, Netns: args.Netns, Network: c.Name,
		VF: ad.v.Addr.String(), Phase: cnistore.PhaseAdding, DPDK: ad.dpdk, IPAMType: c.IPAMType,
		NetConf: json.RawMessage(c.Raw), Created: time.Now().UTC(),
	}
	if l := ad.hostLink; l != nil {
		at := l.Attrs()
		a.HostName, a.HostMTU, a.HostMAC = at.Name, at.MTU, at.HardwareAddr.String()
		// The move keeps the ifindex when the pod has it free, as a fresh pod does:
		// recorded before the move, so that a DEL after a crash mid-ADD knows the VF.
		a.PodIfindex = at.Index
	}
	return a
}

// readPF reads the VF's PF-side config, which DEL restores, when the NetConf asks
// for a PF-side setting.
func (ad *addition) readPF() error {
	c, v := ad.c, ad.v
	ad.mgmt = vf.NewMgmt(ad.p.Root)
	if !c.HasPFSettings() {
		return nil
	}
	orig, err := ad.mgmt.VFConfig(v.MgmtNetdev, v.VFIndex)
	if err != nil {
		return fmt.Errorf("read the VF's PF-side config: %w", err)
	}
	ad.a.PF = &cnistore.PFState{
		Mgmt: v.MgmtNetdev, VFIndex: v.VFIndex, Orig: orig,
		SetVLAN: c.VLAN != nil, SetMAC: c.PodMAC != nil, SetRate: c.MaxTxRate != nil, SetState: c.State != "",
	}
	return nil
}

// close releases what preflight opened, the last first.
func (ad *addition) close() {
	for i := len(ad.closers) - 1; i >= 0; i-- {
		ad.closers[i]()
	}
}

// step follows a change: it registers the change's undo (nil when another step's
// undo covers it) and runs the Fault hook of its name.
func (ad *addition) step(name string, undo func() error) error {
	if undo != nil {
		ad.undo = append(ad.undo, undo)
	}
	return ad.p.fault(name)
}

// rollback undoes every change of a failed ADD, the last first. Undo errors join
// *retErr; without any, the undo is logged.
func (ad *addition) rollback(retErr *error) {
	if *retErr == nil {
		return
	}
	var errs []error
	for i := len(ad.undo) - 1; i >= 0; i-- {
		if err := ad.undo[i](); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		*retErr = fmt.Errorf("%w; undoing the ADD also failed: %w", *retErr, errors.Join(errs...))
	} else {
		ad.log.Info("ADD undone", "err", *retErr)
	}
}

// record writes the attachment's state (phase adding) and the VF's owner record
// before the first change, so that DEL and GC find what to give back after a
// failure or a crash.
func (ad *addition) record() error {
	a, store := ad.a, ad.inv.store
	if err := store.SaveAttachment(a); err != nil {
		return err
	}
	return ad.step(StepState, func() error { return store.RemoveAttachment(a.ContainerID, a.IfName, a.VF) })
}

// setPF makes the PF-side settings the NetConf asks for, in the order of
// pfSettings, each undone by setting the VF's original value again.
func (ad *addition) setPF() error {
	pf := ad.a.PF
	if pf == nil {
		return nil
	}
	for _, s := range pfSettings(ad.mgmt, pf, ad.c, ad.v) {
		if !s.on {
			continue
		}
		if err := s.set(); err != nil {
			return fmt.Errorf("%s: %w", s.what(), err)
		}
		if err := ad.step(s.step, s.undo); err != nil {
			return err
		}
	}
	return nil
}

// startIPAM runs IPAM ADD at once, while the netdev moves, when the IPAM plugin
// needs no interface (host-local, static, whereabouts): the move is the kernel's
// slowest step (an RCU grace period), and the two do not depend on each other.
// Others (dhcp) run after the move (ipam).
func (ad *addition) startIPAM() {
	c, args := ad.c, ad.args
	if c.IPAMType == "" || !ipamWithoutInterface[c.IPAMType] {
		return
	}
	ch := make(chan ipamOut, 1)
	go func() {
		r, err := ad.p.execIPAM("ADD", c.IPAMType, c.Raw, args)
		ch <- ipamOut{r, err}
	}()
	var once sync.Once
	var out ipamOut
	ad.ipamWait = func() (types.Result, error) {
		once.Do(func() { out = <-ch })
		return out.r, out.err
	}
	ad.undo = append(ad.undo, func() error {
		if _, err := ad.ipamWait(); errors.Is(err, errIPAMMissing) {
			return nil // nothing ran, nothing was allocated
		}
		// A failed ADD may have allocated before it failed (a result it could
		// not print, a timeout): IPAM DEL frees what there is, and nothing else.
		return ad.ipamDel()
	})
}

// ipamDel runs IPAM DEL with the ADD's arguments.
func (ad *addition) ipamDel() error {
	_, err := ad.p.execIPAM("DEL", ad.c.IPAMType, ad.c.Raw, ad.args)
	return err
}

// attachInPod moves the VF's netdev into the pod and configures it there, and
// starts the result with its interface. A vfio-pci VF has no netdev: its interface
// gives only the MAC that the PF set.
func (ad *addition) attachInPod() error {
	ad.result = &current.Result{CNIVersion: current.ImplementedSpecVersion, DNS: ad.c.DNS}
	ad.iface = &current.Interface{Name: ad.args.IfName, PciID: ad.v.Addr.String()}
	ad.result.Interfaces = []*current.Interface{ad.iface}
	if ad.dpdk {
		if ad.c.PodMAC != nil {
			ad.iface.Mac = ad.c.PodMAC.String()
		}
		return nil
	}
	ad.iface.Sandbox = ad.args.Netns
	if err := ad.moveToPod(); err != nil {
		return err
	}
	return ad.configurePod()
}

// moveToPod moves the VF's netdev into the pod as CNI_IFNAME; moveBack undoes it.
func (ad *addition) moveToPod() error {
	hostIdx := ad.hostLink.Attrs().Index
	if err := ad.p.moveIn(ad.host, ad.pod, ad.podH, hostIdx, ad.v.Addr, ad.a, ad.args.IfName); err != nil {
		return err
	}
	moveBack := func() error { return ad.p.moveBack(ad.pod, ad.host, ad.v.Addr, ad.a, nil) }
	if ad.a.PodIfindex != hostIdx {
		// The pod had that ifindex taken: record the one the VF got.
		if err := ad.inv.store.SaveAttachment(ad.a); err != nil {
			return errors.Join(err, moveBack())
		}
	}
	return ad.step(StepMove, moveBack)
}

// configurePod sets the MTU and the MAC the NetConf asks for on the VF's netdev in
// the pod, and brings it up. moveBack undoes all three, with the host's MTU and MAC.
func (ad *addition) configurePod() error {
	h, c, name, iface := ad.podH, ad.c, ad.args.IfName, ad.iface
	l, err := h.LinkByIndex(ad.a.PodIfindex)
	if err != nil {
		return fmt.Errorf("find %s in the pod: %w", name, err)
	}
	iface.Mac, iface.Mtu = l.Attrs().HardwareAddr.String(), l.Attrs().MTU
	if c.MTU != nil && *c.MTU != l.Attrs().MTU {
		if err := h.LinkSetMTU(l, *c.MTU); err != nil {
			return fmt.Errorf("\"mtu\" %d: set on %s: %w", *c.MTU, name, err)
		}
		iface.Mtu = *c.MTU
	}
	if err := ad.step(StepMTU, nil); err != nil {
		return err
	}
	if c.PodMAC != nil {
		if err := h.LinkSetHardwareAddr(l, c.PodMAC); err != nil {
			return fmt.Errorf("MAC %s: set on %s: %w", c.PodMAC, name, err)
		}
		iface.Mac = c.PodMAC.String()
	}
	if err := ad.step(StepMAC, nil); err != nil {
		return err
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return ad.step(StepUp, nil)
}

// ipam takes the IPAM plugin's result (started by startIPAM, or run now) into the
// ADD's result and puts its addresses and routes on the pod's interface, where
// they leave with the netdev when moveBack moves it out.
func (ad *addition) ipam() error {
	c := ad.c
	if c.IPAMType == "" {
		return nil
	}
	r, err := ad.ipamResult()
	if err != nil {
		return err
	}
	if err := ad.step(StepIPAM, nil); err != nil {
		return err
	}
	ir, err := current.NewResultFromResult(r)
	if err != nil {
		return fmt.Errorf("IPAM %s result: %w", c.IPAMType, err)
	}
	if len(ir.IPs) == 0 {
		return fmt.Errorf("IPAM %s returned no IP address", c.IPAMType)
	}
	zero := 0
	for _, ip := range ir.IPs {
		ip.Interface = &zero
	}
	ad.result.IPs, ad.result.Routes = ir.IPs, ir.Routes
	if len(ir.DNS.Nameservers) > 0 || ir.DNS.Domain != "" {
		ad.result.DNS = ir.DNS
	}
	if ad.dpdk {
		return nil
	}
	if err := configureAddresses(ad.pod, ad.podH, ad.args.IfName, ad.result); err != nil {
		return fmt.Errorf("configure addresses of %s: %w", ad.args.IfName, err)
	}
	return ad.step(StepAddresses, nil)
}

// ipamResult waits for the IPAM ADD that startIPAM started (its undo is registered
// already), or runs it now and registers its undo: IPAM DEL, also after a failed
// ADD, which may have allocated before it failed.
func (ad *addition) ipamResult() (types.Result, error) {
	if ad.ipamWait != nil {
		return ad.ipamWait()
	}
	r, err := ad.p.execIPAM("ADD", ad.c.IPAMType, ad.c.Raw, ad.args)
	if !errors.Is(err, errIPAMMissing) {
		ad.undo = append(ad.undo, ad.ipamDel)
	}
	return r, err
}

// finish records the attachment as attached, with its result, and returns the
// result in the NetConf's cniVersion.
func (ad *addition) finish() (types.Result, error) {
	rb, err := json.Marshal(ad.result)
	if err != nil {
		return nil, err
	}
	ad.a.Phase, ad.a.Result = cnistore.PhaseAttached, rb
	if err := ad.inv.store.SaveAttachment(ad.a); err != nil {
		return nil, err
	}
	if err := ad.step(StepAttached, nil); err != nil {
		return nil, err
	}
	ad.log.Info("attached", "netdev", ad.a.HostName, "dpdk", ad.dpdk, "mtu", ad.iface.Mtu, "mac", ad.iface.Mac)
	return resultIn(ad.result, ad.c.CNIVersion)
}

// resultIn returns the result in cniVersion ("" is the version the plugin
// implements).
func resultIn(result *current.Result, cniVersion string) (types.Result, error) {
	if cniVersion == "" || cniVersion == current.ImplementedSpecVersion {
		return result, nil
	}
	out, err := result.GetAsVersion(cniVersion)
	if err != nil {
		return nil, withCode(types.ErrIncompatibleCNIVersion, fmt.Errorf("convert the result to cniVersion %s: %w", cniVersion, err))
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
