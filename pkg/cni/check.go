package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/vishvananda/netlink"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cnistore"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// Check verifies the attachment against prevResult: the interface exists in the
// pod, is the VF, has the MTU and MAC of the result and every address; then IPAM
// CHECK.
func (p *Plugin) Check(args *skel.CmdArgs) (retErr error) {
	inv, err := p.begin(args, "CHECK")
	if err != nil {
		return err
	}
	defer inv.close()
	defer func() {
		if retErr != nil {
			inv.log.Error("CHECK failed", "err", retErr)
		}
	}()
	c := inv.conf
	if err := cnistore.CheckKey(args.ContainerID, args.IfName); err != nil {
		return err
	}
	if len(c.PrevResult) == 0 {
		return configError("CHECK needs \"prevResult\" (the ADD result the runtime cached)")
	}
	prev, err := parsePrevResult(c)
	if err != nil {
		return err
	}
	a, err := inv.store.LoadAttachment(args.ContainerID, args.IfName)
	if err != nil {
		return fmt.Errorf("no attachment state for container %s %s: %w", args.ContainerID, args.IfName, err)
	}
	if a.Phase != cnistore.PhaseAttached {
		return fmt.Errorf("attachment %s %s is in phase %q, not attached", args.ContainerID, args.IfName, a.Phase)
	}
	addr, err := vf.ParsePCIAddr(a.VF)
	if err != nil {
		return err
	}
	if !c.VF.IsZero() && c.VF != addr {
		return fmt.Errorf("deviceID %s in the config, but the attachment holds %s", c.VF, addr)
	}
	var want *current.Interface
	for _, i := range prev.Interfaces {
		if i.Name == args.IfName {
			want = i
		}
	}
	if want == nil {
		return fmt.Errorf("prevResult has no interface %s", args.IfName)
	}
	if !a.DPDK {
		host, releaseHost, err := p.hostNS()
		if err != nil {
			return err
		}
		defer releaseHost()
		pod, err := openPodNSOf(args.Netns, host)
		if err != nil {
			return err
		}
		defer pod.Close()
		err = inNS(pod, func(h *netlink.Handle) error {
			l, err := h.LinkByName(args.IfName)
			if err != nil {
				return fmt.Errorf("interface %s is missing from the pod: %w", args.IfName, err)
			}
			at := l.Attrs()
			if !p.podLinkIsVF(pod, l, addr, a.PodIfindex) {
				return fmt.Errorf("interface %s in the pod is not VF %s", args.IfName, addr)
			}
			if want.Mac != "" && !strings.EqualFold(at.HardwareAddr.String(), want.Mac) {
				return fmt.Errorf("interface %s has MAC %s, the result says %s", args.IfName, at.HardwareAddr, want.Mac)
			}
			wantMTU := want.Mtu
			if wantMTU == 0 && c.MTU != nil {
				wantMTU = *c.MTU
			}
			if wantMTU != 0 && at.MTU != wantMTU {
				return fmt.Errorf("interface %s has MTU %d, want %d", args.IfName, at.MTU, wantMTU)
			}
			if at.Flags&net.FlagUp == 0 {
				return fmt.Errorf("interface %s is down", args.IfName)
			}
			addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
			if err != nil {
				return fmt.Errorf("list addresses of %s: %w", args.IfName, err)
			}
			for _, ip := range prev.IPs {
				found := false
				for _, ad := range addrs {
					if ad.IP.Equal(ip.Address.IP) && ad.Mask.String() == ip.Address.Mask.String() {
						found = true
					}
				}
				if !found {
					return fmt.Errorf("interface %s lacks address %s", args.IfName, ip.Address.String())
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if c.IPAMType != "" {
		if _, err := p.execIPAM("CHECK", c.IPAMType, c.Raw, args); err != nil {
			return err
		}
	}
	return nil
}

func parsePrevResult(c *NetConf) (*current.Result, error) {
	var raw map[string]any
	if err := json.Unmarshal(c.PrevResult, &raw); err != nil {
		return nil, withCode(CodeDecoding, fmt.Errorf("decode prevResult: %w", err))
	}
	conf := &types.PluginConf{CNIVersion: c.CNIVersion, RawPrevResult: raw}
	if conf.CNIVersion == "" {
		conf.CNIVersion = current.ImplementedSpecVersion
	}
	if err := version.ParsePrevResult(conf); err != nil {
		return nil, withCode(CodeDecoding, fmt.Errorf("decode prevResult: %w", err))
	}
	return current.NewResultFromResult(conf.PrevResult)
}

// Status reports whether the node can serve ADDs: the state directory is writable,
// and the IPAM plugin (when configured) reports ready. Failures are code 50.
func (p *Plugin) Status(args *skel.CmdArgs) error {
	inv, err := p.begin(args, "STATUS")
	if err != nil {
		return err
	}
	defer inv.close()
	if err := inv.store.CheckWritable(); err != nil {
		return withCode(CodeNotAvailable, fmt.Errorf("state dir %s is not writable: %w", inv.store.Dir, err))
	}
	if _, err := vf.Discover(p.Root, vf.Options{}); err != nil && !isDeviceErr(err) {
		return withCode(CodeNotAvailable, fmt.Errorf("read VFs: %w", err))
	}
	if inv.conf.IPAMType != "" {
		if _, err := p.execIPAM("STATUS", inv.conf.IPAMType, inv.conf.Raw, args); err != nil {
			return withCode(CodeNotAvailable, err)
		}
	}
	return nil
}

func isDeviceErr(err error) bool {
	var de *vf.DeviceError
	return errors.As(err, &de)
}

// GC releases every attachment that is not in cni.dev/valid-attachments (or
// cni.dev/attachments): VF back to the host, PF-side settings and lease freed.
// It goes on past errors and reports them all; then it forwards GC to IPAM.
func (p *Plugin) GC(args *skel.CmdArgs) error {
	inv, err := p.begin(args, "GC")
	if err != nil {
		return err
	}
	defer inv.close()
	valid := map[types.GCAttachment]bool{}
	for _, v := range inv.conf.Valid {
		valid[v] = true
	}
	all, lerr := inv.store.Attachments()
	var errs []error
	if lerr != nil {
		errs = append(errs, lerr)
	}
	for _, a := range all {
		// The valid list is this network's: another network's attachments (the
		// default dataDir is shared) are its own GC's business.
		if a.Network != inv.conf.Name || valid[types.GCAttachment{ContainerID: a.ContainerID, IfName: a.IfName}] {
			continue
		}
		inv.log.Info("GC: releasing stale attachment", "stale", a.ContainerID, "stale-ifname", a.IfName, "vf", a.VF)
		sub := *args
		sub.ContainerID, sub.IfName, sub.Netns = a.ContainerID, a.IfName, a.Netns
		if err := p.release(inv, &sub, a, true); err != nil {
			errs = append(errs, fmt.Errorf("GC %s %s: %w", a.ContainerID, a.IfName, err))
		}
	}
	if inv.conf.IPAMType != "" {
		if _, err := p.execIPAM("GC", inv.conf.IPAMType, inv.conf.Raw, args); err != nil && !errors.Is(err, errIPAMMissing) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
