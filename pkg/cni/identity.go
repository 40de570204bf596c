package cni

import (
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// Which netdev is the VF is decided by what the kernel reports, never by a name:
// a pod with NET_ADMIN can rename its links and give them any alternative name, so
// a name in the pod's namespace proves nothing. In order:
//
//  1. the kernel's word on the device under the link: IFLA_PARENT_DEV_NAME on the
//     PCI bus (Linux 5.16 and later), else the bus info of ETHTOOL_GDRVINFO, which
//     cxgb4vf fills with the VF's PCI address and no link a pod can create does;
//  2. where the kernel says nothing, in a pod: the ifindex ADD recorded there (a pod
//     cannot create a second link with an ifindex the VF still holds), and on an
//     emulated node the VF's alternative name as well (docs/emulation.md);
//  3. in the host's namespace, where no pod creates links: the netdev that sysfs
//     lists under the VF, or on an emulated node its alternative name.

// KernelDevice returns the PCI address of the device under link l of namespace n
// as the kernel reports it, "" when it does not say.
type KernelDevice func(n ns.NetNS, l netlink.Link) string

// kernelDevice is the real KernelDevice: IFLA_PARENT_DEV_NAME of a PCI parent, else
// ETHTOOL_GDRVINFO's bus info when it is a PCI address. A link of a kind (the
// IFLA_INFO_KIND the kernel reports: veth, vlan, macvlan, bridge…) was made by
// software and has no bus device: it is not asked, which spares a call that takes
// the kernel's rtnl lock, the lock every namespace move holds.
func kernelDevice(n ns.NetNS, l netlink.Link) string {
	if a := l.Attrs(); a.ParentDev != "" && a.ParentDevBus == "pci" {
		return canonicalPCI(a.ParentDev)
	}
	if l.Type() != "device" {
		return ""
	}
	return ethtoolBusInfo(n, l)
}

// ParentDevOnly is a KernelDevice that reads IFLA_PARENT_DEV_NAME alone, as on a
// kernel whose drivers report no bus info.
func ParentDevOnly(_ ns.NetNS, l netlink.Link) string {
	if a := l.Attrs(); a.ParentDev != "" && a.ParentDevBus == "pci" {
		return canonicalPCI(a.ParentDev)
	}
	return ""
}

// canonicalPCI returns s as vf.PCIAddr prints it, "" when s is not a PCI address.
func canonicalPCI(s string) string {
	a, err := vf.ParsePCIAddr(s)
	if err != nil || a.IsZero() {
		return ""
	}
	return a.String()
}

// ethtoolBusInfo asks the link's driver for its bus info (ETHTOOL_GDRVINFO) in
// namespace n. The ioctl names the link by name, so the name is checked to still
// be the link's (SIOCGIFINDEX) before and after: a rename in between makes the
// answer "".
//
// Equivalent to: ip netns exec <n> ethtool -i <link>
func ethtoolBusInfo(n ns.NetNS, l netlink.Link) string {
	name, idx := l.Attrs().Name, l.Attrs().Index
	bus := ""
	_ = onThreadIn(n, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		same := func() bool {
			ifr, err := unix.NewIfreq(name)
			if err != nil {
				return false
			}
			if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
				return false
			}
			return int(ifr.Uint32()) == idx
		}
		if !same() {
			return nil
		}
		info, err := unix.IoctlGetEthtoolDrvinfo(fd, name)
		if err != nil || !same() {
			return nil
		}
		bus = canonicalPCI(unix.ByteSliceToString(info.Bus_info[:]))
		return nil
	})
	return bus
}

// device is the kernel's word on link l of namespace n (Plugin.KernelDevice when set).
func (p *Plugin) device(n ns.NetNS, l netlink.Link) string {
	if p.KernelDevice != nil {
		return p.KernelDevice(n, l)
	}
	return kernelDevice(n, l)
}

// emulated reports whether the plugin runs on an emulated sysfs tree.
func (p *Plugin) emulated() bool { return vf.Emulated(p.Root) }

// emulatedAddr returns the PCI address an emulated VF's alternative name carries,
// "" when the node is not emulated or the link has no such name.
func (p *Plugin) emulatedAddr(l netlink.Link) string {
	if !p.emulated() {
		return ""
	}
	for _, alt := range l.Attrs().AltNames {
		if a, ok := vf.EmulatedAltNameAddr(alt); ok {
			return a.String()
		}
	}
	return ""
}

// podLinkIsVF reports whether link l of the pod's namespace n is VF addr. idx is
// the VF's ifindex there as ADD recorded it, 0 when none is known: then only the
// kernel's word can tell.
func (p *Plugin) podLinkIsVF(n ns.NetNS, l netlink.Link, addr vf.PCIAddr, idx int) bool {
	if dev := p.device(n, l); dev != "" {
		return dev == addr.String()
	}
	if idx == 0 || l.Attrs().Index != idx {
		return false
	}
	if p.emulated() {
		return p.emulatedAddr(l) == addr.String()
	}
	return true
}

// hostLinkIsVF reports whether link l of the host's namespace n is VF addr by the
// kernel's word, or on an emulated node by its alternative name.
func (p *Plugin) hostLinkIsVF(n ns.NetNS, l netlink.Link, addr vf.PCIAddr) bool {
	if dev := p.device(n, l); dev != "" {
		return dev == addr.String()
	}
	return p.emulatedAddr(l) == addr.String()
}

// findPodVF returns the VF's link in the pod's namespace n: the link with the
// recorded ifindex idx if it is the VF, else any link the kernel says is the VF;
// nil when there is none.
func (p *Plugin) findPodVF(n ns.NetNS, h *netlink.Handle, addr vf.PCIAddr, idx int) (netlink.Link, error) {
	if idx > 0 {
		if l, err := h.LinkByIndex(idx); err == nil && p.podLinkIsVF(n, l, addr, idx) {
			return l, nil
		}
	}
	links, err := h.LinkList()
	if err != nil {
		return nil, err
	}
	for _, l := range links {
		if p.device(n, l) == addr.String() {
			return l, nil
		}
	}
	return nil, nil
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
