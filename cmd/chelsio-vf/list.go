package main

import (
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

func cmdList(args []string, stdout, stderr io.Writer) error {
	var opt vf.Options
	fs := newFlags("list", "list [--json] [--sysfs-root DIR] [--t7]", stderr)
	asJSON := fs.Bool("json", false, "print a JSON array, one object per VF")
	root := sysfsRootFlag(fs)
	fs.BoolVar(&opt.AllowT7, "t7", false, "also list T7 VFs (IDs not confirmed by upstream Linux)")
	if err := parse(fs, args); err != nil {
		return err
	}
	node, derr := vf.Discover(sysfs.Root(*root), opt)
	if node == nil {
		return derr
	}
	vfs := node.VFs()
	if *asJSON {
		if vfs == nil {
			vfs = []*vf.VF{}
		}
		if err := writeJSON(stdout, vfs); err != nil {
			return err
		}
	} else if err := writeTable(stdout, node, vfs); err != nil {
		return err
	}
	if derr != nil {
		// Broken devices are left out of the list; say which and why, and fail so
		// that scripts notice.
		fmt.Fprintf(stderr, "chelsio-vf list: some Chelsio devices were skipped:\n%v\n", derr)
		return errReported
	}
	return nil
}

func writeTable(w io.Writer, node *vf.Node, vfs []*vf.VF) error {
	if len(node.Adapters) == 0 {
		_, err := fmt.Fprintln(w, "No Chelsio adapter found.")
		return err
	}
	sriov := false
	for _, a := range node.Adapters {
		n := 0
		for _, pf := range a.PFs {
			n += len(pf.VFs)
			sriov = sriov || pf.SRIOV
		}
		fmt.Fprintf(w, "Adapter %s: %s %s, %d ports, NUMA %s, %d VFs\n", a.Slot, a.Product.Chip, a.Model(), a.NumPorts, numa(a.NUMANode), n)
		for _, pf := range a.PFs {
			mg := pf.MgmtNetdev
			if mg == "" {
				mg = "-"
			}
			count := fmt.Sprintf("%d/%d VFs", pf.NumVFs, pf.TotalVFs)
			if !pf.SRIOV {
				count = "0 VFs (no SR-IOV)"
			}
			fmt.Fprintf(w, "  PF%d %s: %s, driver %s, mgmt %s\n", pf.Number, pf.Addr, count, dash(pf.Driver), mg)
		}
	}
	if len(vfs) == 0 {
		hint := "create them with `echo N > /sys/bus/pci/devices/<PF0-3>/sriov_numvfs`."
		if !sriov {
			hint = "no PF0-3 has SR-IOV; the adapter's firmware config gives them no VFs."
		}
		_, err := fmt.Fprintln(w, "\nNo VFs: "+hint)
		return err
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PCI ADDRESS\tMODEL\tPF\tVF\tPORT\tDRIVER\tNETDEV\tMAC\tNUMA\tIOMMU")
	derived := false
	for _, v := range vfs {
		port := strconv.Itoa(v.Port)
		if v.PortDerived {
			port += "*"
			derived = true
		}
		model := v.Model
		if model == "" {
			model = fmt.Sprintf("%s 0x%04x", v.Chip, v.DeviceID)
		}
		group := "-"
		if v.IOMMUGroup >= 0 {
			group = strconv.Itoa(v.IOMMUGroup)
		}
		fmt.Fprintf(tw, "%s\t%s\tPF%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Addr, model, v.PFNumber, v.VFIndex, port, dash(v.Driver), dash(v.Netdev), dash(v.MAC), numa(v.NUMANode), group)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if derived {
		_, err := fmt.Fprintln(w, "* port derived from the PF number (no netdev to read dev_port from)")
		return err
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func numa(n int) string {
	if n < 0 {
		return "-"
	}
	return strconv.Itoa(n)
}
