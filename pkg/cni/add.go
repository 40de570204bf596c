package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cnistore"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

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
	defer inv.end(&retErr)
	ad := &addition{p: p, inv: inv, args: args, c: inv.conf, log: inv.log}
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
	lock    *os.File       // the VF lock's file, which IPAM ADD inherits (ipamAdd)
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
	t0 := time.Now()
	lock, err := ad.inv.store.LockVF(v.Addr.String(), p.LockTimeout)
	if err != nil {
		return err
	}
	ad.inv.tl.waited("lock", t0)
	ad.inv.tl.mark("locked")
	ad.lock = lock.File()
	ad.closers = append(ad.closers, lock.Unlock)
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
	if err := ad.readPF(); err != nil {
		return err
	}
	ad.inv.tl.mark("preflight")
	return nil
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
		PodNamespace: argValue(args.Args, "K8S_POD_NAMESPACE"), PodName: argValue(args.Args, "K8S_POD_NAME"),
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
	return ad.inv.fault(name)
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
	c := ad.c
	if c.IPAMType == "" || !ipamWithoutInterface[c.IPAMType] {
		return
	}
	ch := make(chan ipamOut, 1)
	go func() {
		r, err := ad.ipamAdd()
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

// ipamAdd runs IPAM ADD holding the VF's lock: the IPAM plugin inherits it, so
// that if a runtime kills this ADD while the plugin allocates, the plugin is left
// to finish (a plugin killed halfway, as host-local between creating a lease file
// and writing its owner, leaves a lease that no DEL can find), and the runtime's
// DEL waits on the lock until it has, then frees what it allocated.
func (ad *addition) ipamAdd() (types.Result, error) {
	defer ad.inv.tl.waited("ipam", time.Now())
	return ad.p.execIPAMWith(ipamExec{hold: ad.lock}, "ADD", ad.c.IPAMType, ad.c.Raw, ad.args)
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
		defer ad.inv.tl.waited("ipam_wait", time.Now())
		return ad.ipamWait()
	}
	r, err := ad.ipamAdd()
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
		return nil, withCode(CodeIncompatibleVersion, fmt.Errorf("convert the result to cniVersion %s: %w", cniVersion, err))
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
