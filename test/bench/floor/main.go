// Command floor is the benchmark floor of a CNI ADD or DEL: the same netlink work as
// chelsio-sriov (move and rename the VF netdev in one message, set it up; or down,
// move and rename back) done by one small process, with no configuration, state,
// sysfs, lock or IPAM. It prints the time of the namespace move alone
// ("move_us=<n>"). Run in the host namespace:
//
//	floor add <host-netdev> <pod-netns-path> <ifname>
//	floor del <host-netdev> <pod-netns-path> <ifname>
package main

import (
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

func main() {
	runtime.LockOSThread()
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: floor add|del <host-netdev> <pod-netns-path> <ifname>")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2], os.Args[3], os.Args[4]); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

func run(verb, hostName, podPath, ifname string) error {
	host, err := netns.Get()
	if err != nil {
		return err
	}
	defer host.Close()
	pod, err := netns.GetFromPath(podPath)
	if err != nil {
		return err
	}
	defer pod.Close()
	ph, err := netlink.NewHandleAt(pod)
	if err != nil {
		return err
	}
	defer ph.Close()
	switch verb {
	case "add":
		l, err := netlink.LinkByName(hostName)
		if err != nil {
			return err
		}
		if err := timed(func() error { return move(l.Attrs().Index, pod, ifname) }); err != nil {
			return err
		}
		pl, err := ph.LinkByName(ifname)
		if err != nil {
			return err
		}
		return ph.LinkSetUp(pl)
	case "del":
		pl, err := ph.LinkByName(ifname)
		if err != nil {
			return err
		}
		if err := ph.LinkSetDown(pl); err != nil {
			return err
		}
		if err := netns.Set(pod); err != nil {
			return err
		}
		err = timed(func() error { return move(pl.Attrs().Index, host, hostName) })
		if serr := netns.Set(host); serr != nil {
			return serr
		}
		return err
	}
	return fmt.Errorf("unknown verb %q", verb)
}

// timed runs f and prints how long it took.
func timed(f func() error) error {
	t0 := time.Now()
	err := f()
	fmt.Printf("move_us=%d\n", time.Since(t0).Microseconds())
	return err
}

// move sends RTM_NEWLINK with IFLA_NET_NS_FD and IFLA_IFNAME from the current netns.
func move(idx int, to netns.NsHandle, name string) error {
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(idx)
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFLA_NET_NS_FD, nl.Uint32Attr(uint32(to))))
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)))
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}
