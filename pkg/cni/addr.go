package cni

import (
	"fmt"
	"net"
	"os"
	"time"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// dadTimeout bounds the wait for IPv6 duplicate address detection before the
// routes through an IPv6 gateway are added (the kernel refuses a route via a
// gateway while the address that reaches it is tentative).
const dadTimeout = 5 * time.Second

// configureAddresses puts the IPAM result's addresses and routes on the pod's
// interface ifname, with h a netlink handle in the pod's namespace: what every
// reference CNI plugin does with an IPAM result. A route without a gateway goes
// through the first gateway of its family; IPv6 is switched on for the interface
// (and lo) if the result has an IPv6 address, with keep_addr_on_down so that the
// address survives the link going down. Addresses and routes need no undo of
// their own: they leave with the netdev when it moves back to the host.
func configureAddresses(pod ns.NetNS, h *netlink.Handle, ifname string, res *current.Result) error {
	l, err := h.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("find %s in the pod: %w", ifname, err)
	}
	var gw4, gw6 net.IP
	v6 := false
	for _, ipc := range res.IPs {
		if ipc.Address.IP.To4() == nil && !v6 {
			if err := enableIPv6(pod, ifname); err != nil {
				return err
			}
			v6 = true
		}
		a := &netlink.Addr{IPNet: &net.IPNet{IP: ipc.Address.IP, Mask: ipc.Address.Mask}}
		if err := h.AddrAdd(l, a); err != nil {
			return fmt.Errorf("add address %s to %s: %w", ipc.Address.String(), ifname, err)
		}
		switch {
		case ipc.Gateway == nil:
		case ipc.Gateway.To4() != nil:
			if gw4 == nil {
				gw4 = ipc.Gateway
			}
		default:
			if gw6 == nil {
				gw6 = ipc.Gateway
			}
		}
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(l); err != nil {
			return fmt.Errorf("set %s up: %w", ifname, err)
		}
	}
	if gw6 != nil {
		if err := waitDAD(h, l, ifname, dadTimeout); err != nil {
			return err
		}
	}
	for _, r := range res.Routes {
		rt := netlink.Route{LinkIndex: l.Attrs().Index, Dst: &net.IPNet{IP: r.Dst.IP, Mask: r.Dst.Mask}, Gw: r.GW, Priority: r.Priority}
		if rt.Gw == nil {
			if r.Dst.IP.To4() != nil {
				rt.Gw = gw4
			} else {
				rt.Gw = gw6
			}
		}
		if r.Table != nil {
			rt.Table = *r.Table
		}
		if r.Scope != nil {
			rt.Scope = netlink.Scope(*r.Scope)
		}
		// Appended, not replaced: a second route to the same destination (a
		// second gateway) makes a multipath route, as with ip route append.
		if err := h.RouteAppend(&rt); err != nil {
			gw := "direct"
			if rt.Gw != nil {
				gw = "via " + rt.Gw.String()
			}
			return fmt.Errorf("add route %s %s dev %s metric %d table %d: %w", r.Dst.String(), gw, ifname, r.Priority, rt.Table, err)
		}
	}
	return nil
}

// enableIPv6 clears disable_ipv6 on lo and ifname and sets keep_addr_on_down on
// ifname, in the pod's namespace (the sysctls of /proc/sys/net belong to the
// namespace of the thread that opens them).
func enableIPv6(pod ns.NetNS, ifname string) error {
	return pod.Do(func(ns.NetNS) error {
		for _, dev := range []string{"lo", ifname} {
			p := "/proc/sys/net/ipv6/conf/" + dev + "/disable_ipv6"
			if b, err := os.ReadFile(p); err == nil && len(b) > 0 && b[0] == '0' {
				continue
			}
			if err := os.WriteFile(p, []byte("0"), 0o644); err != nil {
				return fmt.Errorf("enable IPv6 on %s in the pod: %w", dev, err)
			}
		}
		p := "/proc/sys/net/ipv6/conf/" + ifname + "/keep_addr_on_down"
		if err := os.WriteFile(p, []byte("1"), 0o644); err != nil {
			return fmt.Errorf("set keep_addr_on_down on %s in the pod: %w", ifname, err)
		}
		return nil
	})
}

// waitDAD waits until no IPv6 address of l is tentative; an address that failed
// duplicate address detection is an error.
func waitDAD(h *netlink.Handle, l netlink.Link, ifname string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		addrs, err := h.AddrList(l, netlink.FAMILY_V6)
		if err != nil {
			return fmt.Errorf("list the IPv6 addresses of %s: %w", ifname, err)
		}
		tentative := false
		for _, a := range addrs {
			if a.Flags&unix.IFA_F_DADFAILED != 0 {
				return fmt.Errorf("address %s on %s: duplicate address detection failed (the address is in use on the network)", a.IPNet, ifname)
			}
			if a.Flags&unix.IFA_F_TENTATIVE != 0 {
				tentative = true
			}
		}
		if !tentative {
			return nil
		}
		if time.Now().After(deadline) {
			hint := ""
			if cur, err := h.LinkByIndex(l.Attrs().Index); err == nil && cur.Attrs().RawFlags&unix.IFF_LOWER_UP == 0 {
				hint = ": it has no carrier, and detection cannot finish while the port's link is down"
			}
			return fmt.Errorf("IPv6 addresses of %s still tentative after %s of duplicate address detection%s", ifname, timeout, hint)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
