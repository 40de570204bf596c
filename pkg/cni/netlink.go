package cni

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
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
	return nil, false, withCode(CodeInvalidNetNS, fmt.Errorf("open netns %s: %w", path, err))
}

// openPodNSOf opens CNI_NETNS for a verb that needs the pod's namespace: code 8
// when it is not a network namespace, or is the host's own (host), where a pod's
// VF never goes.
func openPodNSOf(path string, host ns.NetNS) (ns.NetNS, error) {
	pod, gone, err := openPodNS(path)
	if err != nil {
		return nil, err
	}
	if gone {
		return nil, withCode(CodeInvalidNetNS, fmt.Errorf("CNI_NETNS %q is not a network namespace", path))
	}
	if sameNetNS(pod, host) {
		_ = pod.Close()
		return nil, withCode(CodeInvalidNetNS, fmt.Errorf("CNI_NETNS %q is the node's own network namespace, not a pod's: the VF never goes there", path))
	}
	return pod, nil
}

// isHostNetns reports whether path names the plugin's host namespace.
func (p *Plugin) isHostNetns(path string) bool {
	if path == "" {
		return false
	}
	host, release, err := p.hostNS()
	if err != nil {
		return false
	}
	defer release()
	n, gone, err := openPodNS(path)
	if err != nil || gone {
		return false
	}
	defer n.Close()
	return sameNetNS(n, host)
}

// sameNetNS reports whether a and b are the same network namespace (the same
// nsfs inode), whatever paths name them.
func sameNetNS(a, b ns.NetNS) bool {
	var sa, sb unix.Stat_t
	if unix.Fstat(int(a.Fd()), &sa) != nil || unix.Fstat(int(b.Fd()), &sb) != nil {
		return false
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

// moveLink moves the link with index idx out of namespace from into namespace to,
// naming it name there, in one RTM_NEWLINK carrying IFLA_NET_NS_FD and IFLA_IFNAME:
// no moment where the netdev sits in either namespace under a name that could
// clash, and nothing for udev to race with. If the link's current name is taken in
// the target, the kernel uses name for the move itself.
//
// Equivalent to: ip -n <from> link set <dev> netns <to> name <name>
func moveLink(from ns.NetNS, idx int, to ns.NetNS, name string) error {
	return onThreadIn(from, func() error {
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
	err := onThreadIn(n, func() error {
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

// onThreadIn runs f on the calling goroutine's own thread, switched into namespace
// n for the time of f, and switches the thread back. f must only make sockets and
// use them (a socket keeps the namespace it was made in): ns.Do would run f on a
// goroutine of its own, which needs a thread of its own, and a thread costs a
// short-lived process more than the netlink call it serves. As with ns.Do, a thread
// that cannot be switched back stays locked to the goroutine, so that it is never
// used for anything else (the runtime ends it with the goroutine), and the call
// fails.
func onThreadIn(n ns.NetNS, f func() error) error {
	runtime.LockOSThread()
	cur, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open the thread's netns: %w", err)
	}
	defer unix.Close(cur)
	if err := unix.Setns(int(n.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns %s: %w", n.Path(), err)
	}
	ferr := f()
	if err := unix.Setns(cur, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("return from netns %s: %w", n.Path(), err)
	}
	runtime.UnlockOSThread()
	return ferr
}
