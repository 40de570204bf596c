package cni

import (
	"encoding/json"
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

// check is the work of Check.
func (p *Plugin) check(inv *invocation) error {
	args := inv.args
	c := inv.conf
	if len(c.PrevResult) == 0 {
		return configError("CHECK needs \"prevResult\" (the ADD result the runtime cached)")
	}
	prev, err := parsePrevResult(c)
	if err != nil {
		return err
	}
	a, addr, err := attachedVF(inv, args)
	if err != nil {
		return err
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
		if err := p.checkPod(args, a.PodIfindex, addr, want, prev.IPs, c.MTU); err != nil {
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

// attachedVF returns the attachment's state, which must say attached, and its VF,
// which must be the NetConf's when it names one.
func attachedVF(inv *invocation, args *skel.CmdArgs) (*cnistore.Attachment, vf.PCIAddr, error) {
	a, err := inv.store.LoadAttachment(args.ContainerID, args.IfName)
	if err != nil {
		return nil, vf.PCIAddr{}, fmt.Errorf("no attachment state for container %s %s: %w", args.ContainerID, args.IfName, err)
	}
	if a.Phase != cnistore.PhaseAttached {
		return nil, vf.PCIAddr{}, fmt.Errorf("attachment %s %s is in phase %q, not attached", args.ContainerID, args.IfName, a.Phase)
	}
	addr, err := vf.ParsePCIAddr(a.VF)
	if err != nil {
		return nil, vf.PCIAddr{}, err
	}
	if c := inv.conf; !c.VF.IsZero() && c.VF != addr {
		return nil, vf.PCIAddr{}, fmt.Errorf("deviceID %s in the config, but the attachment holds %s", c.VF, addr)
	}
	return a, addr, nil
}

// checkPod checks CNI_IFNAME in the pod: it is VF addr (ifindex idx there, as ADD
// recorded it), has the MAC and MTU of want (or mtu, the NetConf's, where the
// result gives none), is up and has every address of ips.
func (p *Plugin) checkPod(args *skel.CmdArgs, idx int, addr vf.PCIAddr, want *current.Interface, ips []*current.IPConfig, mtu *int) error {
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
	name := args.IfName
	return inNS(pod, func(h *netlink.Handle) error {
		l, err := h.LinkByName(name)
		if err != nil {
			return fmt.Errorf("interface %s is missing from the pod: %w", name, err)
		}
		at := l.Attrs()
		if !p.podLinkIsVF(pod, l, addr, idx) {
			return fmt.Errorf("interface %s in the pod is not VF %s", name, addr)
		}
		if want.Mac != "" && !strings.EqualFold(at.HardwareAddr.String(), want.Mac) {
			return fmt.Errorf("interface %s has MAC %s, the result says %s", name, at.HardwareAddr, want.Mac)
		}
		wantMTU := want.Mtu
		if wantMTU == 0 && mtu != nil {
			wantMTU = *mtu
		}
		if wantMTU != 0 && at.MTU != wantMTU {
			return fmt.Errorf("interface %s has MTU %d, want %d", name, at.MTU, wantMTU)
		}
		if at.Flags&net.FlagUp == 0 {
			return fmt.Errorf("interface %s is down", name)
		}
		return checkAddresses(h, l, name, ips)
	})
}

// checkAddresses checks that link l (name) has every address of ips.
func checkAddresses(h *netlink.Handle, l netlink.Link, name string, ips []*current.IPConfig) error {
	addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", name, err)
	}
	for _, ip := range ips {
		found := false
		for _, ad := range addrs {
			if ad.IP.Equal(ip.Address.IP) && ad.Mask.String() == ip.Address.Mask.String() {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("interface %s lacks address %s", name, ip.Address.String())
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
