package emulate

import (
	"fmt"
	"strconv"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/uevent"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// When the watcher creates or removes VFs, it sends in the worker's network
// namespace the uevents the kernel sends for a real VF (docs/emulation.md): for each
// VF created, add (pci), add (net, its netdev) and bind (pci, DRIVER); for each VF
// removed, remove (net), unbind (pci) and remove (pci). DEVPATH is the function's
// directory relative to the tree, which is where the kernel's would be under /sys.
// They are sent once the tree shows the change, so that whoever rescans on them
// finds it.

// openUevents opens the worker's uevent socket; without one (no CAP_NET_ADMIN) the
// worker sends none, and says so once.
func (ww *workerWatch) openUevents() {
	c, err := uevent.DialAt(ww.w.NetnsPath())
	if err != nil {
		ww.wt.logf("worker %d: no uevents: %v", ww.w.Index, err)
		return
	}
	ww.uev = c
}

func (ww *workerWatch) closeUevents() {
	if ww.uev != nil {
		_ = ww.uev.Close()
	}
}

// vfUevents returns the uevents of PF pf's VFs, as the tree has them now: those of
// their creation (added), or of their removal. Call with wt.mu held.
func (ww *workerWatch) vfUevents(pf int, added bool) []*uevent.Message {
	var out []*uevent.Message
	for _, bv := range ww.adapter.VFs[pf] {
		dir, err := ww.tree.FunctionDir(bv.Addr)
		if err != nil {
			continue
		}
		out = append(out, ww.functionUevents(dir, bv.Addr, added)...)
	}
	return out
}

// functionUevents returns the uevents of one function whose directory (relative to
// the tree) is dir.
func (ww *workerWatch) functionUevents(dir string, addr vf.PCIAddr, added bool) []*uevent.Message {
	root := ww.tree.Root
	vendor, _ := root.ReadHex(dir+"/vendor", 16)
	device, _ := root.ReadHex(dir+"/device", 16)
	driver, _ := root.LinkBase(dir + "/driver")
	netdevs, _ := root.ReadDir(dir + "/net")
	devpath := "/" + dir
	pci := func(action string) *uevent.Message {
		env := map[string]string{
			"SUBSYSTEM": "pci", "PCI_CLASS": "20000", "PCI_SLOT_NAME": addr.String(),
			"PCI_ID":        fmt.Sprintf("%04X:%04X", vendor, device),
			"PCI_SUBSYS_ID": fmt.Sprintf("%04X:0000", vendor),
			"MODALIAS":      fmt.Sprintf("pci:v%08Xd%08Xsv%08Xsd00000000bc02sc00i00", vendor, device, vendor),
		}
		if action == "bind" {
			env["DRIVER"] = driver
		}
		return &uevent.Message{Action: action, DevPath: devpath, Env: env}
	}
	net := func(action, name string) *uevent.Message {
		return &uevent.Message{Action: action, DevPath: devpath + "/net/" + name, Env: map[string]string{"SUBSYSTEM": "net", "INTERFACE": name}}
	}
	var out []*uevent.Message
	if added {
		out = append(out, pci("add"))
		for _, n := range netdevs {
			out = append(out, net("add", n))
		}
		if driver != "" {
			out = append(out, pci("bind"))
		}
		return out
	}
	for _, n := range netdevs {
		out = append(out, net("remove", n))
	}
	if driver != "" {
		out = append(out, pci("unbind"))
	}
	return append(out, pci("remove"))
}

// sendUevents numbers and sends msgs; a failure is logged once per batch.
func (ww *workerWatch) sendUevents(msgs []*uevent.Message) {
	if ww.uev == nil {
		return
	}
	for _, m := range msgs {
		m.Env["SEQNUM"] = strconv.FormatUint(ww.wt.seq.Add(1), 10)
		if err := ww.uev.Send(m); err != nil {
			ww.wt.logf("worker %d: %v", ww.w.Index, err)
			return
		}
	}
}
