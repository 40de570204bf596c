package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cnistore"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/safepath"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// Del frees everything an attachment holds: the IPAM lease, the VF netdev (back in
// the host with its original name, MTU and MAC, from wherever it is) and the
// PF-side settings. It succeeds when nothing is left to do: repeated, after the
// netns is gone, with an empty CNI_NETNS, or without a state file (then IPAM DEL
// still runs, and the VF is fetched from the pod only if the kernel names the
// device under one of its links: see identity.go).
func (p *Plugin) Del(args *skel.CmdArgs) (retErr error) {
	inv, err := p.begin(args, "DEL")
	if err != nil {
		return p.delRefusedConf(args, err)
	}
	defer inv.end(&retErr)
	if p.isHostNetns(args.Netns) {
		// No pod's: ADD refuses it, so no VF went there, and IPAM plugins refuse it
		// too (host-local does). Free what the state records as without CNI_NETNS.
		inv.log.Warn("CNI_NETNS is the node's own network namespace; ignoring it", "netns", args.Netns)
		sub := *args
		sub.Netns = ""
		args = &sub
	}
	// DEL makes no directory and changes no directory's mode: only ADD does. A
	// dataDir that is missing records nothing, and release does what needs no
	// state, without a lock (lockIfStored).
	a, err := inv.store.LoadAttachment(args.ContainerID, args.IfName)
	if err != nil && !isNotExist(err) {
		// A corrupt state file: fall back to the NetConf, and replace it below.
		inv.log.Warn("state file unreadable; using the network config", "err", err)
		a = nil
	}
	return p.release(inv, args, a, true)
}

// delRefusedConf handles a DEL whose config Load refuses. An ADD with that config
// was refused before it changed anything, so there is nothing to free, unless a
// state file says otherwise (a config that was accepted when ADD ran): then the
// state's own config releases it. A dataDir, state file or logFile that the plugin
// will not use is no fault of the config, and says nothing of what ADD did: DEL
// reports it and frees nothing.
func (p *Plugin) delRefusedConf(args *skel.CmdArgs, loadErr error) error {
	if safepath.IsRefusal(loadErr) {
		return loadErr
	}
	if err := cnistore.CheckKey(args.ContainerID, args.IfName); err != nil {
		return err
	}
	dataDir := DefaultDataDir
	var m map[string]any
	if json.Unmarshal(args.StdinData, &m) == nil {
		if d, ok := m["dataDir"].(string); ok && checkAbsPath("dataDir", d) == nil {
			dataDir = d
		}
	}
	if err := p.confineDataDir(dataDir); err != nil {
		return err // a directory the plugin reads nothing from
	}
	a, err := cnistore.Store{Dir: dataDir}.LoadAttachment(args.ContainerID, args.IfName)
	if safepath.IsRefusal(err) {
		return err // the state is there but unsafe to use: say so, free nothing
	}
	if err != nil {
		if p.Stderr != nil {
			fmt.Fprintf(p.Stderr, "chelsio-sriov: DEL %s %s: the config is refused (%v), and no state records an attachment: nothing to free\n", args.ContainerID, args.IfName, loadErr)
		}
		return nil
	}
	sub := *args
	sub.StdinData = a.NetConf
	inv, err := p.begin(&sub, "DEL")
	switch {
	case safepath.IsRefusal(err):
		return err
	case err != nil:
		// The config ADD recorded is refused too (a rule this version added): free
		// what the state records all the same, never leave a VF or a lease behind.
		if inv, err = p.beginFromState(&sub, a, dataDir); err != nil {
			return err
		}
		inv.log.Warn("config refused, and the config ADD recorded too; releasing what the state records", "err", loadErr)
	default:
		inv.log.Warn("config refused; releasing with the config ADD recorded", "err", loadErr)
	}
	defer inv.close()
	return p.release(inv, &sub, a, true)
}

// beginFromState is begin for a DEL that has only the attachment's state to go
// by: the network's name, the VF, the IPAM plugin and the config it was given.
// The state directory is checked as always; the log goes to stderr.
func (p *Plugin) beginFromState(args *skel.CmdArgs, a *cnistore.Attachment, dataDir string) (*invocation, error) {
	c := &NetConf{Name: a.Network, DataDir: dataDir, IPAMType: a.IPAMType, Raw: a.NetConf}
	if pa, err := vf.ParsePCIAddr(a.VF); err == nil {
		c.VF = pa
	}
	store := cnistore.Store{Dir: dataDir}
	if err := store.Preflight(args.ContainerID, args.IfName, c.VF); err != nil {
		return nil, err
	}
	log, closeLog, _ := openLog(&NetConf{}, p.Stderr)
	log = log.With("verb", "DEL", "container", args.ContainerID, "ifname", args.IfName)
	return &invocation{p: p, tl: &timeline{}, verb: "DEL", args: args, conf: c, log: log, store: store, close: closeLog}, nil
}

// release is DEL's work, shared with GC (which runs IPAM GC itself afterwards):
// under the VF's lock, IPAM DEL, the VF given back, and the attachment's state
// removed. The state stays where something is left to free, for the runtime's
// retry, GC, or an ADD that takes the VF over.
func (p *Plugin) release(inv *invocation, args *skel.CmdArgs, a *cnistore.Attachment, runIPAM bool) error {
	if a != nil && a.Phase == cnistore.PhaseIPAMPending {
		return p.releasePendingIPAM(inv, args, a, runIPAM)
	}
	c := inv.conf
	addr := c.VF
	ipamType, netconf := c.IPAMType, c.Raw
	if a != nil {
		if pa, err := vf.ParsePCIAddr(a.VF); err == nil {
			addr = pa
		}
		if a.IPAMType != "" {
			ipamType, netconf = a.IPAMType, a.NetConf
		}
	}
	if !addr.IsZero() {
		t0 := time.Now()
		unlock, err := inv.store.LockIfStored(addr.String(), p.LockTimeout)
		if err != nil {
			return err
		}
		defer unlock()
		inv.tl.waited("lock", t0)
		inv.tl.mark("locked")
	}
	ipamWait := func() (bool, error) { return false, nil }
	if runIPAM && ipamType != "" {
		start, w, err := p.startIPAMDel(inv, args, ipamType, netconf)
		if err != nil {
			// Keep the state so that the runtime's retry can free the lease.
			return err
		}
		inv.linkDown, ipamWait = start, w
	}
	var errs []error
	vfKept := false
	if !addr.IsZero() {
		// No return until ipamWait below: the IPAM DEL may be running.
		if err := p.releaseVF(inv, args, addr, a); errors.Is(err, errVFMissing) {
			// Nothing more to free now; keep the state so that GC, or an ADD that
			// finds the pod gone, can still give the VF back as it was.
			inv.log.Warn("VF netdev not found in the pod or the host; state kept for GC", "vf", addr.String())
			vfKept = true
		} else if err != nil {
			errs = append(errs, err)
		}
	}
	t0 := time.Now()
	ipamMissing, err := ipamWait()
	inv.tl.waited("ipam_wait", t0)
	if err != nil {
		// Keep the state so that the runtime's retry can free the lease.
		errs = append(errs, err)
	}
	if len(errs) > 0 || vfKept {
		return errors.Join(errs...)
	}
	return p.forget(inv, args, a, addr, ipamType, netconf, ipamMissing)
}

// startIPAMDel runs IPAM DEL. One that needs an interface (dhcp releases through
// the pod's) runs at once, and a failure is returned. One that needs none
// (host-local, static, whereabouts) runs while the VF moves home, as in ADD: start
// starts it, once the VF's link is down in the pod (no packet leaves with the
// address then, so another pod may have it), and wait starts it if nothing did and
// waits for it. Starting it then rather than first also spreads the IPAM plugins of
// many DELs at once over their moves, instead of all of them competing with the
// first moves for the CPUs. wait reports an IPAM plugin missing from CNI_PATH,
// which is no error.
func (p *Plugin) startIPAMDel(inv *invocation, args *skel.CmdArgs, ipamType string, netconf []byte) (start func(), wait func() (missing bool, err error), _ error) {
	del := func() (bool, error) {
		t0 := time.Now()
		_, err := p.execIPAM("DEL", ipamType, netconf, args)
		inv.tl.waited("ipam", t0)
		if errors.Is(err, errIPAMMissing) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		return false, inv.fault(StepDelIPAM)
	}
	if !ipamWithoutInterface[ipamType] {
		missing, err := del()
		if err != nil {
			return nil, nil, err
		}
		return func() {}, func() (bool, error) { return missing, nil }, nil
	}
	type out struct {
		missing bool
		err     error
	}
	ch := make(chan out, 1)
	var once sync.Once
	start = func() {
		once.Do(func() {
			go func() {
				missing, err := del()
				ch <- out{missing, err}
			}()
		})
	}
	return start, func() (bool, error) {
		start()
		o := <-ch
		return o.missing, o.err
	}, nil
}

// forget removes the state of an attachment that release freed, and the VF's
// owner record. When the IPAM plugin was missing, the attachment's file holds the
// lease instead (keepPendingIPAM, replaced in one rename), and only the owner
// record goes.
func (p *Plugin) forget(inv *invocation, args *skel.CmdArgs, a *cnistore.Attachment, addr vf.PCIAddr, ipamType string, netconf []byte, ipamMissing bool) error {
	if ipamMissing {
		if err := p.keepPendingIPAM(inv, args, a, addr, ipamType, netconf); err != nil {
			return withCode(CodeIOFailure, err) // the state is kept: the retry tries again
		}
		if err := inv.store.ReleaseOwner(args.ContainerID, args.IfName, addrString(addr)); err != nil {
			return withCode(CodeIOFailure, err)
		}
	} else if err := inv.store.RemoveAttachment(args.ContainerID, args.IfName, addrString(addr)); err != nil {
		return withCode(CodeIOFailure, err)
	}
	if err := inv.fault(StepDelState); err != nil {
		return err
	}
	inv.log.Info("released", "vf", addrString(addr))
	return nil
}

// releaseVF gives the VF back unless its owner record names another attachment.
// An owner record that cannot be decoded (truncated by a power loss: the state is
// not synced) names no one: it is removed and the VF taken as free.
func (p *Plugin) releaseVF(inv *invocation, args *skel.CmdArgs, addr vf.PCIAddr, a *cnistore.Attachment) error {
	owner, err := inv.store.Owner(addr.String())
	switch {
	case cnistore.IsCorrupt(err):
		inv.log.Warn("VF owner record unreadable; taking the VF as free", "vf", addr.String(), "err", err)
		if err := inv.store.DropCorruptOwner(addr.String()); err != nil {
			return withCode(CodeIOFailure, err)
		}
	case isNotExist(err):
	case err != nil:
		return withCode(CodeIOFailure, err) // the state is kept: the retry frees it
	case owner.ContainerID != args.ContainerID || owner.IfName != args.IfName:
		// The VF now belongs to another pod (ours is long gone): leave it alone.
		inv.log.Info("VF belongs to another attachment; not touching it", "vf", addr.String(), "owner", owner.ContainerID)
		return nil
	}
	return p.restoreVF(inv, args, addr, a)
}

// keepPendingIPAM records an attachment whose lease DEL could not free. DEL still
// succeeds: the pod is gone and its VF is free; failing would only make the
// runtime retry a DEL that cannot do more until the IPAM plugin is reinstalled.
// The record keeps the VF's address, so that a DEL interrupted before the VF's
// owner record went can still release it.
func (p *Plugin) keepPendingIPAM(inv *invocation, args *skel.CmdArgs, a *cnistore.Attachment, addr vf.PCIAddr, ipamType string, netconf []byte) error {
	pending := &cnistore.Attachment{
		ContainerID: args.ContainerID, IfName: args.IfName, Netns: args.Netns, Network: inv.conf.Name,
		VF: addrString(addr), Phase: cnistore.PhaseIPAMPending, IPAMType: ipamType, NetConf: netconf, Created: time.Now().UTC(),
	}
	if a != nil {
		pending.Network, pending.Created = a.Network, a.Created
	}
	if err := inv.store.SaveAttachment(pending); err != nil {
		return fmt.Errorf("IPAM plugin %s missing, and its lease cannot be recorded for later: %w", ipamType, err)
	}
	inv.log.Warn("IPAM plugin missing: VF released, lease kept until a DEL or GC of this attachment runs with the plugin installed", "ipam", ipamType)
	return nil
}

// releasePendingIPAM is DEL (or GC) of an attachment whose VF was released
// before: the VF's owner record goes if it still names the attachment (a DEL may
// have stopped before removing it), then IPAM DEL runs if it can.
func (p *Plugin) releasePendingIPAM(inv *invocation, args *skel.CmdArgs, a *cnistore.Attachment, runIPAM bool) error {
	if a.VF != "" {
		unlock, err := inv.store.Lock(a.VF, p.LockTimeout)
		if err != nil {
			return err
		}
		defer unlock()
		if err := inv.store.ReleaseOwner(args.ContainerID, args.IfName, a.VF); err != nil {
			return withCode(CodeIOFailure, err)
		}
	}
	if !runIPAM {
		return nil // the record is all that is left, and it is IPAM's
	}
	if _, err := p.execIPAM("DEL", a.IPAMType, a.NetConf, args); err != nil {
		if errors.Is(err, errIPAMMissing) {
			inv.log.Warn("IPAM plugin still missing: lease kept", "ipam", a.IPAMType)
			return nil
		}
		return err
	}
	if err := inv.fault(StepDelIPAM); err != nil {
		return err
	}
	if err := inv.store.RemoveAttachment(args.ContainerID, args.IfName, a.VF); err != nil {
		return withCode(CodeIOFailure, err)
	}
	inv.log.Info("released the lease kept from an earlier DEL", "ipam", a.IPAMType)
	return inv.fault(StepDelState)
}

func addrString(a vf.PCIAddr) string {
	if a.IsZero() {
		return ""
	}
	return a.String()
}

// errVFMissing reports a VF netdev found neither in the pod nor in the host.
var errVFMissing = errors.New("VF netdev not found in the pod or the host")

// restoreVF brings the VF netdev home and restores its PF-side settings. Without a
// state file (a == nil) it only fetches the VF out of the pod: a VF in the host may
// be free or another pod's, and there is nothing known to restore it to.
func (p *Plugin) restoreVF(inv *invocation, args *skel.CmdArgs, addr vf.PCIAddr, a *cnistore.Attachment) error {
	known := a != nil
	if a == nil {
		a = &cnistore.Attachment{VF: addr.String()}
	}
	netnsPath := args.Netns
	if netnsPath == "" {
		// CNI_NETNS may be empty on DEL; the state remembers where the VF went.
		netnsPath = a.Netns
	}
	var errs []error
	if !a.DPDK {
		if err := p.bringHome(inv, netnsPath, addr, a, known); err != nil {
			errs = append(errs, err)
		}
	}
	if a.PF != nil {
		if err := restorePF(vf.NewMgmt(p.Root), a.PF); err != nil {
			errs = append(errs, err)
		} else if err := inv.fault(StepDelPF); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// bringHome finds the VF netdev in the pod, by what the kernel reports or the
// ifindex ADD recorded (findPodVF: never by a name the pod can change), or in the
// host, where the kernel puts it when the pod's namespace is destroyed, and
// restores it there. It waits up to ReturnTimeout for a netdev on its way back from
// a destroyed namespace.
func (p *Plugin) bringHome(inv *invocation, netnsPath string, addr vf.PCIAddr, a *cnistore.Attachment, known bool) error {
	host, releaseHost, err := p.hostNS()
	if err != nil {
		return err
	}
	defer releaseHost()
	pod, gone, err := openPodNS(netnsPath)
	if err != nil {
		return err
	}
	if !gone && sameNetNS(pod, host) {
		// Not a pod's namespace: ADD never put a VF there. Only the host search below.
		_ = pod.Close()
		gone, netnsPath = true, ""
	}
	if !gone {
		defer pod.Close()
		err := p.moveBack(pod, host, addr, a, inv.delStep)
		switch {
		case err == nil:
			inv.log.Info("VF returned to the host", "vf", addr.String())
			return nil
		case !errors.Is(err, errNotInPod):
			return fmt.Errorf("return %s to the host: %w", addr, err)
		}
	}
	if !known {
		return nil
	}
	if inv.linkDown != nil {
		inv.linkDown() // no link in a pod to wait for
	}
	// In the host. After a namespace is destroyed the kernel brings the netdev back
	// asynchronously: wait a little for it then.
	return p.restoreInHost(inv, host, addr, a, netnsPath != "" && gone)
}

// restoreInHost finds the VF's netdev in the host and restores it as the
// attachment found it; with wait, it waits up to ReturnTimeout for the netdev to
// come back. errVFMissing when it is not there.
func (p *Plugin) restoreInHost(inv *invocation, host ns.NetNS, addr vf.PCIAddr, a *cnistore.Attachment, wait bool) error {
	deadline := time.Now().Add(p.ReturnTimeout)
	for {
		v, err := vf.LookupVF(p.Root, addr, vf.Options{})
		if err != nil {
			if isNotExist(err) {
				inv.log.Warn("VF gone from sysfs; nothing to restore", "vf", addr.String())
				return nil
			}
			return fmt.Errorf("find VF %s: %w", addr, err)
		}
		if v.Driver != vf.DriverCxgb4VF {
			return nil // rebound meanwhile: no netdev to restore
		}
		restored, err := p.restoreHostLink(host, v, a)
		if err != nil {
			return err
		}
		if restored {
			inv.log.Info("VF restored in the host", "vf", addr.String(), "netdev", a.HostName)
			return nil
		}
		if !wait || time.Now().After(deadline) {
			return errVFMissing
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// restoreHostLink gives VF v's netdev in the host the state and name the
// attachment recorded (restoreLink, then its host name); restored is false when
// the netdev is not there.
func (p *Plugin) restoreHostLink(host ns.NetNS, v *vf.VF, a *cnistore.Attachment) (restored bool, _ error) {
	err := inNS(host, func(h *netlink.Handle) error {
		l := p.findHostLink(host, h, v)
		if l == nil {
			return nil
		}
		restored = true
		name := l.Attrs().Name
		if err := restoreLink(h, l, a); err != nil {
			return err
		}
		if a.HostName == "" || a.HostName == name {
			return nil
		}
		if _, err := h.LinkByName(a.HostName); err == nil {
			return fmt.Errorf("rename %s back to %s: the host has another %s", name, a.HostName, a.HostName)
		}
		if err := h.LinkSetName(l, a.HostName); err != nil {
			return fmt.Errorf("rename %s back to %s: %w", name, a.HostName, err)
		}
		return nil
	})
	return restored, err
}
