package cni

import (
	"errors"
	"fmt"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/vishvananda/netlink"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// Del frees everything an attachment holds: the IPAM lease, the VF netdev (back in
// the host with its original name, MTU and MAC, from wherever it is) and the
// PF-side settings. It succeeds when nothing is left to do: repeated, after the
// netns is gone, with an empty CNI_NETNS, or without a state file (then the VF is
// found by its deviceID and IPAM DEL still runs).
func (p *Plugin) Del(args *skel.CmdArgs) (retErr error) {
	inv, err := p.begin(args, "DEL")
	if err != nil {
		return err
	}
	defer inv.close()
	defer func() {
		if retErr != nil {
			inv.log.Error("DEL failed", "err", retErr)
		}
	}()
	if err := checkKey(args.ContainerID, args.IfName); err != nil {
		return err
	}
	if err := inv.store.ensure(); err != nil {
		return err
	}
	a, err := inv.store.LoadAttachment(args.ContainerID, args.IfName)
	if err != nil && !isNotExist(err) {
		// A corrupt state file: fall back to the NetConf, and replace it below.
		inv.log.Warn("state file unreadable; using the network config", "err", err)
		a = nil
	}
	return p.release(inv, args, a, true)
}

// release is DEL's work, shared with GC (which runs IPAM GC itself afterwards).
func (p *Plugin) release(inv *invocation, args *skel.CmdArgs, a *Attachment, runIPAM bool) error {
	c := inv.conf
	addr := c.VF
	if a != nil {
		if pa, err := vf.ParsePCIAddr(a.VF); err == nil {
			addr = pa
		}
	}
	ipamType, netconf := c.IPAMType, c.Raw
	if a != nil && a.IPAMType != "" {
		ipamType, netconf = a.IPAMType, a.NetConf
	}

	var unlock func()
	if !addr.IsZero() {
		u, err := inv.store.Lock(addr.String(), p.LockTimeout)
		if err != nil {
			return err
		}
		unlock = u
		defer unlock()
	}

	var errs []error
	if runIPAM && ipamType != "" {
		if _, err := p.execIPAM("DEL", ipamType, netconf, args); err != nil {
			if errors.Is(err, errIPAMMissing) {
				inv.log.Warn("IPAM plugin missing; its lease, if any, stays", "err", err)
			} else {
				// Keep the state so that the runtime's retry can free the lease.
				return err
			}
		}
	}

	if !addr.IsZero() {
		owner, err := inv.store.Owner(addr.String())
		mine := isNotExist(err) || (err == nil && owner.ContainerID == args.ContainerID && owner.IfName == args.IfName)
		if !mine {
			// The VF now belongs to another pod (ours is long gone): leave it alone.
			inv.log.Info("VF belongs to another attachment; not touching it", "vf", addr.String(), "owner", owner.ContainerID)
		} else if err := p.restoreVF(inv, args, addr, a); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := inv.store.RemoveAttachment(args.ContainerID, args.IfName, addrString(addr)); err != nil {
		return withCode(CodeIOFailure, err)
	}
	inv.log.Info("released", "vf", addrString(addr))
	return nil
}

func addrString(a vf.PCIAddr) string {
	if a.IsZero() {
		return ""
	}
	return a.String()
}

// restoreVF brings the VF netdev home and restores its PF-side settings.
func (p *Plugin) restoreVF(inv *invocation, args *skel.CmdArgs, addr vf.PCIAddr, a *Attachment) error {
	if a == nil {
		a = &Attachment{VF: addr.String()}
	}
	var errs []error
	if !a.DPDK {
		if err := p.bringHome(inv, args, addr, a); err != nil {
			errs = append(errs, err)
		}
	}
	if a.PF != nil {
		if err := restorePF(vf.NewMgmt(p.Root), a.PF); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// restorePF puts back every PF-side setting ADD applied.
func restorePF(m vf.Mgmt, pf *PFState) error {
	var errs []error
	if pf.SetState {
		errs = append(errs, m.SetVFLinkState(pf.Mgmt, pf.VFIndex, orState(pf.Orig.LinkState)))
	}
	if pf.SetRate {
		errs = append(errs, m.SetVFRate(pf.Mgmt, pf.VFIndex, pf.Orig.MaxTxRate))
	}
	if pf.SetMAC {
		errs = append(errs, restorePFMAC(m, pf))
	}
	if pf.SetVLAN {
		errs = append(errs, m.SetVFVLAN(pf.Mgmt, pf.VFIndex, pf.Orig.VLAN))
	}
	return errors.Join(errs...)
}

// bringHome finds the VF netdev in the pod, or in the host (where the kernel puts
// it when the pod's namespace is destroyed), and restores it there.
func (p *Plugin) bringHome(inv *invocation, args *skel.CmdArgs, addr vf.PCIAddr, a *Attachment) error {
	host, releaseHost, err := p.hostNS()
	if err != nil {
		return err
	}
	defer releaseHost()
	pod, gone, err := openPodNS(args.Netns)
	if err != nil {
		return err
	}
	if !gone {
		defer pod.Close()
		found := false
		err := inNS(pod, func(h *netlink.Handle) error {
			l, err := h.LinkByName(args.IfName)
			if err != nil || !linkIsVF(l, addr) {
				return nil // not in the pod: look in the host
			}
			found = true
			return nil
		})
		if err != nil {
			return err
		}
		if found {
			name := a.HostName
			if name == "" {
				// No state: name it as the kernel would on its way home.
				err := inNS(host, func(h *netlink.Handle) error { name = freeName(h, args.IfName); return nil })
				if err != nil {
					return err
				}
			}
			b := *a
			b.HostName = name
			if err := p.moveBack(pod, host, args.IfName, &b); err != nil {
				return fmt.Errorf("return %s to the host: %w", addr, err)
			}
			inv.log.Info("VF returned to the host", "vf", addr.String(), "netdev", name)
			return nil
		}
	}
	// In the host: by its sysfs net/ entry. After a namespace is destroyed the
	// kernel brings the netdev back asynchronously: wait a little for it.
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
		if v.Netdev != "" {
			return inNS(host, func(h *netlink.Handle) error {
				l, err := h.LinkByName(v.Netdev)
				if err != nil {
					return fmt.Errorf("find VF netdev %s in the host: %w", v.Netdev, err)
				}
				if err := restoreLink(h, l, a); err != nil {
					return err
				}
				if a.HostName != "" && a.HostName != v.Netdev {
					if _, err := h.LinkByName(a.HostName); err == nil {
						return fmt.Errorf("rename %s back to %s: the host has another %s", v.Netdev, a.HostName, a.HostName)
					}
					if err := h.LinkSetName(l, a.HostName); err != nil {
						return fmt.Errorf("rename %s back to %s: %w", v.Netdev, a.HostName, err)
					}
				}
				inv.log.Info("VF restored in the host", "vf", addr.String(), "netdev", a.HostName)
				return nil
			})
		}
		if !gone || time.Now().After(deadline) {
			// Nowhere to be seen: the runtime's later DEL or GC finds it.
			inv.log.Warn("VF netdev not found in the pod or the host; a later ADD of it waits until it is back", "vf", addr.String())
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}
