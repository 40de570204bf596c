package cni

import (
	"errors"
	"fmt"
	"regexp"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// hostNS returns the host namespace and a function that releases it.
func (p *Plugin) hostNS() (ns.NetNS, func(), error) {
	if p.HostNS != nil {
		return p.HostNS, func() {}, nil
	}
	h, err := ns.GetCurrentNS()
	if err != nil {
		return nil, nil, fmt.Errorf("open the host netns: %w", err)
	}
	return h, func() { _ = h.Close() }, nil
}

// openPodNS opens CNI_NETNS; gone reports a path that no longer is a namespace.
func openPodNS(path string) (n ns.NetNS, gone bool, err error) {
	if path == "" {
		return nil, true, nil
	}
	n, err = ns.GetNS(path)
	if err == nil {
		return n, false, nil
	}
	var notExist ns.NSPathNotExistErr
	var notNS ns.NSPathNotNSErr
	if errors.As(err, &notExist) || errors.As(err, &notNS) {
		return nil, true, nil
	}
	return nil, false, withCode(types8, fmt.Errorf("open netns %s: %w", path, err))
}

// types8 is the CNI code for an invalid network namespace.
const types8 = 8

// moveLink moves the link with index idx out of namespace from into namespace to,
// naming it name there, in one RTM_NEWLINK carrying IFLA_NET_NS_FD and IFLA_IFNAME:
// no moment where the netdev sits in either namespace under a name that could
// clash, and nothing for udev to race with. If the link's current name is taken in
// the target, the kernel uses name for the move itself.
//
// Equivalent to: ip -n <from> link set <dev> netns <to> name <name>
func moveLink(from ns.NetNS, idx int, to ns.NetNS, name string) error {
	return from.Do(func(ns.NetNS) error {
		req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_ACK)
		msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
		msg.Index = int32(idx)
		req.AddData(msg)
		req.AddData(nl.NewRtAttr(unix.IFLA_NET_NS_FD, nl.Uint32Attr(uint32(to.Fd()))))
		req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)))
		_, err := req.Execute(unix.NETLINK_ROUTE, 0)
		if err != nil {
			return fmt.Errorf("move link %d to netns %s as %s: %w", idx, to.Path(), name, err)
		}
		return nil
	})
}

// linkIsVF reports whether a link is the VF's netdev: the kernel names a PCI
// netdev's parent device (IFLA_PARENT_DEV_NAME); an emulated node's VF carries an
// alternative name <node>-w<N>.<pci address with '.' for ':'>.
func linkIsVF(l netlink.Link, addr vf.PCIAddr) bool {
	a := l.Attrs()
	if a.ParentDev != "" {
		return a.ParentDev == addr.String()
	}
	return emulatedAddr(a) == addr.String()
}

var emulatedAltRE = regexp.MustCompile(`-w[0-9]+\.([0-9a-f]{4,5})\.([0-9a-f]{2})\.([0-9a-f]{2})\.([0-7])$`)

// emulatedAddr returns the PCI address an emulated VF's alternative name carries.
func emulatedAddr(a *netlink.LinkAttrs) string {
	for _, alt := range a.AltNames {
		if m := emulatedAltRE.FindStringSubmatch(alt); m != nil {
			return m[1] + ":" + m[2] + ":" + m[3] + "." + m[4]
		}
	}
	return ""
}

// inNS runs f with a netlink handle in namespace n.
func inNS(n ns.NetNS, f func(h *netlink.Handle) error) error {
	h, err := handleIn(n)
	if err != nil {
		return err
	}
	defer h.Close()
	return f(h)
}

// handleIn opens a netlink handle in namespace n; the caller closes it.
func handleIn(n ns.NetNS) (*netlink.Handle, error) {
	var h *netlink.Handle
	err := n.Do(func(ns.NetNS) error {
		var err error
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netlink in netns %s: %w", n.Path(), err)
	}
	return h, nil
}

// freeName returns name if no link of h has it, else the lowest free dev<N>, as
// the kernel names a netdev it brings back from a destroyed namespace.
func freeName(h *netlink.Handle, name string) string {
	if _, err := h.LinkByName(name); err != nil {
		return name
	}
	for i := 0; ; i++ {
		n := fmt.Sprintf("dev%d", i)
		if _, err := h.LinkByName(n); err != nil {
			return n
		}
	}
}
