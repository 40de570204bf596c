package cni

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cnistore"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/cut"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

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
