// Command floor is the benchmark floor of a CNI ADD or DEL: the same netlink work as
// chelsio-sriov (move and rename the VF netdev in one message, set it up; or down,
// move and rename back) done by one small process, with no configuration, state,
// sysfs or lock. It prints the time of the namespace move alone ("move_us=<n>").
// With -ipam it also runs that IPAM plugin as chelsio-sriov does (ADD while the
// netdev moves, then the first address it returns on the pod's interface; DEL
// once the pod's interface is down, while the netdev moves home), so that the
// IPAM plugin's cost under load shows apart from ours. Run in the host namespace:
//
//	floor [-ipam <plugin> -conf <netconf> -id <container>] add <host-netdev> <pod-netns-path> <ifname>
//	floor [-ipam <plugin> -conf <netconf> -id <container>] del <host-netdev> <pod-netns-path> <ifname>
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

func main() {
	runtime.LockOSThread()
	ipam := flag.String("ipam", "", "IPAM plugin to run alongside the move (empty: none)")
	conf := flag.String("conf", "", "the network config given to the IPAM plugin")
	id := flag.String("id", "floor", "CNI_CONTAINERID given to the IPAM plugin")
	flag.Parse()
	if flag.NArg() != 4 {
		fmt.Fprintln(os.Stderr, "usage: floor [-ipam <plugin> -conf <netconf> -id <container>] add|del <host-netdev> <pod-netns-path> <ifname>")
		os.Exit(2)
	}
	a := flag.Args()
	f := &floor{ipam: *ipam, conf: []byte(*conf), id: *id, podPath: a[2], ifname: a[3]}
	if err := f.run(a[0], a[1]); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

// floor is one operation's arguments.
type floor struct {
	ipam            string
	conf            []byte
	id              string
	podPath, ifname string
}

// startIPAM runs the IPAM plugin for cmd on a goroutine; wait returns its output.
func (f *floor) startIPAM(cmd string) (wait func() ([]byte, error)) {
	if f.ipam == "" {
		return func() ([]byte, error) { return nil, nil }
	}
	type out struct {
		b   []byte
		err error
	}
	ch := make(chan out, 1)
	go func() {
		c := exec.Command(f.ipam)
		c.Env = append(os.Environ(), "CNI_COMMAND="+cmd, "CNI_CONTAINERID="+f.id, "CNI_NETNS="+f.podPath, "CNI_IFNAME="+f.ifname, "CNI_PATH="+filepath.Dir(f.ipam))
		c.Stdin = bytes.NewReader(f.conf)
		var stderr bytes.Buffer
		c.Stderr = &stderr
		b, err := c.Output()
		if err != nil {
			err = fmt.Errorf("IPAM %s: %w: %s %s", cmd, err, b, stderr.Bytes())
		}
		ch <- out{b, err}
	}()
	return func() ([]byte, error) { o := <-ch; return o.b, o.err }
}

// addAddress puts the first address of the IPAM result b on the pod's link.
func addAddress(ph *netlink.Handle, l netlink.Link, b []byte) error {
	var r struct {
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("IPAM result %q: %w", b, err)
	}
	if len(r.IPs) == 0 {
		return fmt.Errorf("IPAM result %q: no address", b)
	}
	ip, ipnet, err := net.ParseCIDR(r.IPs[0].Address)
	if err != nil {
		return err
	}
	ipnet.IP = ip
	return ph.AddrAdd(l, &netlink.Addr{IPNet: ipnet})
}

func (f *floor) run(verb, hostName string) error {
	podPath, ifname := f.podPath, f.ifname
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
		wait := f.startIPAM("ADD")
		if err := timed(func() error { return move(l.Attrs().Index, pod, ifname) }); err != nil {
			return err
		}
		pl, err := ph.LinkByName(ifname)
		if err != nil {
			return err
		}
		if err := ph.LinkSetUp(pl); err != nil {
			return err
		}
		b, err := wait()
		if err != nil || f.ipam == "" {
			return err
		}
		return addAddress(ph, pl, b)
	case "del":
		pl, err := ph.LinkByName(ifname)
		if err != nil {
			return err
		}
		if err := ph.LinkSetDown(pl); err != nil {
			return err
		}
		wait := f.startIPAM("DEL")
		if err := netns.Set(pod); err != nil {
			return err
		}
		err = timed(func() error { return move(pl.Attrs().Index, host, hostName) })
		if serr := netns.Set(host); serr != nil {
			return serr
		}
		if _, werr := wait(); err == nil {
			err = werr
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
