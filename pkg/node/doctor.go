package node

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cnistore"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// Status is the outcome of one check.
type Status int

// Outcomes of a check. Any Fail makes the node not ready.
const (
	OK   Status = iota
	Warn        // works, but not as the reference procedure sets the node up
	Fail        // chelsio-sriov cannot work on this node
)

var statusNames = [...]string{OK: "OK", Warn: "WARN", Fail: "FAIL"}

func (s Status) String() string {
	if s >= 0 && int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "Status(" + strconv.Itoa(int(s)) + ")"
}

// MarshalText writes "OK", "WARN" or "FAIL".
func (s Status) MarshalText() ([]byte, error) {
	if s < 0 || int(s) >= len(statusNames) {
		return nil, fmt.Errorf("invalid status %d", int(s))
	}
	return []byte(s.String()), nil
}

// UnmarshalText reads "OK", "WARN" or "FAIL".
func (s *Status) UnmarshalText(b []byte) error {
	for i, n := range statusNames {
		if string(b) == n {
			*s = Status(i)
			return nil
		}
	}
	return fmt.Errorf("invalid status %q: want OK, WARN or FAIL", b)
}

// Names of the checks, in the order Checks lists them.
const (
	CheckAdapters     = "adapters"      // Chelsio adapters present
	CheckCxgb4        = "cxgb4"         // cxgb4 loaded, bound to PF4 (up, with ports) and PF0-3
	CheckVFDrivers    = "vf-drivers"    // cxgb4vf and vfio-pci loaded
	CheckVFs          = "vfs"           // sriov_numvfs > 0 on some PF
	CheckVFBinding    = "vf-binding"    // every VF on cxgb4vf or vfio-pci
	CheckIOMMU        = "iommu"         // IOMMU groups for VFs on vfio-pci
	CheckMTU          = "mtu"           // port and VF netdev MTUs
	CheckSwap         = "swap"          // swap off
	CheckModules      = "modules"       // br_netfilter and overlay loaded
	CheckSysctls      = "sysctls"       // bridge-nf-call-iptables and ip_forward on
	CheckCNIBinary    = "cni-binary"    // the CNI plugin installed
	CheckMultus       = "multus"        // Multus, which calls the plugin for a pod's extra networks
	CheckIPAM         = "ipam-plugin"   // the NAD's IPAM plugin installed
	CheckBootModules  = "boot-modules"  // cxgb4vf (and vfio-pci in use) loaded at boot
	CheckDevicePlugin = "device-plugin" // chelsio-sriov-dp's socket present and listening
	CheckCNIState     = "cni-state"     // the CNI plugin's state: usable, nothing left waiting
	CheckPolicy       = "node-policy"   // the policy agent's last round: applied, refused, failed
)

// Result is the finding of one check.
type Result struct {
	Name    string `json:"name"`
	Status  Status `json:"status"`
	Finding string `json:"finding"`
	// Fix says what to do; empty when Status is OK.
	Fix string `json:"fix"`
}

// Config says where the checks look. Every location is a field, so that tests and
// the emulated node stand in for a real node.
type Config struct {
	Sysfs sysfs.Root // default sysfs.FromEnv()
	Proc  string     // procfs root; default /proc
	// CNIBinDir is where the runtime looks for CNI plugins; default /opt/cni/bin.
	CNIBinDir string
	// CNIConfDir is where the runtime reads CNI network configs; default
	// DefaultCNIConfDir.
	CNIConfDir string
	// IPAM is the IPAM plugin the NetworkAttachmentDefinition names; default
	// DefaultIPAM.
	IPAM string
	// EtcRoot holds modules-load.d and modules; default /etc.
	EtcRoot string
	// PluginName is the CNI plugin's file name; default chelsio-sriov.
	PluginName string
	// DevicePluginDir is kubelet's socket directory; default
	// /var/lib/kubelet/device-plugins.
	DevicePluginDir string
	// CNIStateDir is the CNI plugin's dataDir; default /var/lib/cni/chelsio-sriov.
	CNIStateDir string
	// MTU is the least MTU of port and VF netdevs; 0 skips the check.
	MTU int
	// DialTimeout bounds the connection to each device plugin socket; default 1 s.
	DialTimeout time.Duration
	// PolicyStatusFile is where the policy agent reports its last round; default
	// DefaultPolicyStatusFile.
	PolicyStatusFile string
	// Now is the time the status's age is measured to; default time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	c.Sysfs = cmp.Or(c.Sysfs, sysfs.FromEnv())
	c.Proc = cmp.Or(c.Proc, "/proc")
	c.CNIBinDir = cmp.Or(c.CNIBinDir, DefaultCNIBinDir)
	c.CNIConfDir = cmp.Or(c.CNIConfDir, DefaultCNIConfDir)
	c.IPAM = cmp.Or(c.IPAM, DefaultIPAM)
	c.EtcRoot = cmp.Or(c.EtcRoot, "/etc")
	c.PluginName = cmp.Or(c.PluginName, PluginName)
	c.DevicePluginDir = cmp.Or(c.DevicePluginDir, DefaultDevicePluginDir)
	if c.DialTimeout <= 0 {
		c.DialTimeout = time.Second
	}
	c.CNIStateDir = cmp.Or(c.CNIStateDir, cnistore.DefaultDir)
	c.PolicyStatusFile = cmp.Or(c.PolicyStatusFile, DefaultPolicyStatusFile)
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Facts are what the checks read: the Config and the node's Chelsio hardware,
// discovered once.
type Facts struct {
	Config
	HW *vf.Node // nil when bus/pci/devices cannot be listed
	// HWErr is vf.Discover's error: devices it skipped, or why HW is nil.
	HWErr error
}

// Gather fills the Config's defaults and discovers the Chelsio hardware under its
// sysfs root.
func Gather(cfg Config) *Facts {
	cfg = cfg.withDefaults()
	hw, err := vf.Discover(cfg.Sysfs, vf.Options{})
	return &Facts{Config: cfg, HW: hw, HWErr: err}
}

// Check is one check of the node.
type Check struct {
	Name string
	Run  func(*Facts) Result // Result.Name is filled by Run
}

// Checks returns every check, in the order Doctor runs them: hardware, then the
// kernel, then what Kubernetes needs.
func Checks() []Check {
	return []Check{
		{CheckAdapters, checkAdapters},
		{CheckCxgb4, checkCxgb4},
		{CheckVFDrivers, checkVFDrivers},
		{CheckVFs, checkVFs},
		{CheckVFBinding, checkVFBinding},
		{CheckIOMMU, checkIOMMU},
		{CheckMTU, checkMTU},
		{CheckSwap, checkSwap},
		{CheckModules, checkModules},
		{CheckSysctls, checkSysctls},
		{CheckCNIBinary, checkCNIBinary},
		{CheckMultus, checkMultus},
		{CheckIPAM, checkIPAM},
		{CheckBootModules, checkBootModules},
		{CheckDevicePlugin, checkDevicePlugin},
		{CheckCNIState, checkCNIState},
		{CheckPolicy, checkPolicy},
	}
}

// Report is the result of every check; OK is false when any check failed. Its JSON
// is the output of `chelsio-vf doctor --json`.
type Report struct {
	Checks []Result `json:"checks"`
	OK     bool     `json:"ok"`
}

// Doctor runs every check against the node that cfg describes.
func Doctor(cfg Config) Report { return Run(Gather(cfg), Checks()) }

// Run runs the checks in order.
func Run(f *Facts, checks []Check) Report {
	r := Report{Checks: make([]Result, 0, len(checks)), OK: true}
	for _, c := range checks {
		res := c.Run(f)
		res.Name = c.Name
		switch res.Status {
		case OK:
			res.Fix = ""
		case Fail:
			r.OK = false
		}
		r.Checks = append(r.Checks, res)
	}
	return r
}

// Count returns the number of checks with status s.
func (r Report) Count(s Status) int {
	n := 0
	for _, c := range r.Checks {
		if c.Status == s {
			n++
		}
	}
	return n
}

// WriteText writes one line per check, "OK|WARN|FAIL  <check>: <finding>", each
// WARN or FAIL followed by "      fix: <what to do>", then a summary line.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	for _, c := range r.Checks {
		fmt.Fprintf(&b, "%-4s  %s: %s\n", c.Status, c.Name, c.Finding)
		if c.Status != OK && c.Fix != "" {
			fmt.Fprintf(&b, "      fix: %s\n", c.Fix)
		}
	}
	fmt.Fprintf(&b, "%d checks: %d OK, %d WARN, %d FAIL\n", len(r.Checks), r.Count(OK), r.Count(Warn), r.Count(Fail))
	_, err := io.WriteString(w, b.String())
	return err
}

// notChecked is the result of a check whose subject another check found missing.
func notChecked(why, see string) Result {
	return Result{Status: Warn, Finding: "not checked: " + why, Fix: "see the " + see + " check"}
}

// adapters returns the adapters, or the result of a check that needs one.
func (f *Facts) adapters() ([]*vf.Adapter, *Result) {
	if f.HW == nil || len(f.HW.Adapters) == 0 {
		r := notChecked("no Chelsio adapter", CheckAdapters)
		return nil, &r
	}
	return f.HW.Adapters, nil
}

// sysPath is the path a user types on the node: fixes name /sys, not the root the
// checks read (the emulated node mounts its tree there too).
func sysPath(rel string) string { return sysfs.DefaultRoot.Path(rel) }

func checkAdapters(f *Facts) Result {
	if f.HW == nil {
		return Result{
			Status:  Fail,
			Finding: fmt.Sprintf("cannot list PCI devices: %v", f.HWErr),
			Fix:     "point --sysfs-root (or $" + sysfs.EnvRoot + ") at a sysfs tree, /sys by default",
		}
	}
	if len(f.HW.Adapters) == 0 {
		return Result{
			Status:  Fail,
			Finding: "no Chelsio adapter under " + f.Sysfs.Path("bus/pci/devices"),
			Fix:     "install a Chelsio T4/T5/T6 adapter; `lspci -d 1425:` lists Chelsio PCI functions",
		}
	}
	var parts []string
	for _, a := range f.HW.Adapters {
		parts = append(parts, fmt.Sprintf("%s %s at %s, %s", a.Product.Chip, a.Model(), a.Slot, plural(a.NumPorts, "port")))
	}
	res := Result{Status: OK, Finding: strings.Join(parts, "; ")}
	if f.HWErr != nil {
		errs := []error{f.HWErr}
		var joined interface{ Unwrap() []error }
		if errors.As(f.HWErr, &joined) {
			errs = joined.Unwrap()
		}
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		res.Status = Warn
		res.Finding += fmt.Sprintf("; %s skipped: %s", plural(len(errs), "Chelsio function"), listed(msgs, 1))
		res.Fix = "repair or remove the named functions; `chelsio-vf list` names each with the file it could not read"
	}
	return res
}

// bindFix is the command that binds the function at addr, now on driver cur
// ("" unbound), to driver.
func bindFix(addr vf.PCIAddr, cur, driver string) string {
	a := addr.String()
	s := ""
	if cur != "" {
		s = "echo " + a + " > " + sysPath("bus/pci/devices/"+a+"/driver/unbind") + "; "
	}
	return s + "echo " + a + " > " + sysPath("bus/pci/drivers/"+driver+"/bind")
}

func checkCxgb4(f *Facts) Result {
	if !f.Sysfs.Exists("bus/pci/drivers/" + vf.DriverCxgb4) {
		return Result{Status: Fail, Finding: "cxgb4 is not loaded (no " + f.Sysfs.Path("bus/pci/drivers", vf.DriverCxgb4) + ")", Fix: "modprobe cxgb4"}
	}
	adapters, skip := f.adapters()
	if skip != nil {
		return *skip
	}
	var fails, warns, fixes, oks []string
	for _, a := range adapters {
		switch {
		case a.PF4 == nil:
			fails = append(fails, a.Slot+": no PF4")
			fixes = append(fixes, "check `dmesg | grep cxgb4` for PF4 "+a.Slot+".4 (firmware, adapter seating)")
		case a.PF4.Driver != vf.DriverCxgb4:
			fails = append(fails, fmt.Sprintf("PF4 %s not on cxgb4 (%s)", a.PF4.Addr, vf.DriverOr(a.PF4.Driver, "no driver")))
			fixes = append(fixes, bindFix(a.PF4.Addr, a.PF4.Driver, vf.DriverCxgb4))
		case len(a.PF4.Ports) == 0:
			// cxgb4 registers the port netdevs once PF4 has initialised the firmware,
			// which PF0-3 need before they can create VFs.
			fails = append(fails, fmt.Sprintf("PF4 %s is on cxgb4 but has no port netdev (firmware not initialised)", a.PF4.Addr))
			fixes = append(fixes, "check `dmesg | grep cxgb4` for firmware errors, then reload: modprobe -r cxgb4vf cxgb4; modprobe cxgb4")
		}
		var off, offFixes []string
		sriov := 0
		for _, pf := range a.PFs {
			if !pf.SRIOV {
				continue // no VFs to create: nothing for cxgb4 to do there
			}
			sriov++
			if pf.Driver != vf.DriverCxgb4 {
				off = append(off, fmt.Sprintf("PF%d %s not on cxgb4 (%s)", pf.Number, pf.Addr, vf.DriverOr(pf.Driver, "no driver")))
				offFixes = append(offFixes, bindFix(pf.Addr, pf.Driver, vf.DriverCxgb4))
			}
		}
		switch {
		case len(a.PFs) == 0:
			fails = append(fails, a.Slot+": no PF0-3")
			fixes = append(fixes, "check `lspci -s "+a.Slot+"` and `dmesg | grep cxgb4`")
		case len(off) > 0 && len(off) == sriov:
			fails = append(fails, off...)
			fixes = append(fixes, offFixes...)
		case len(off) > 0:
			warns = append(warns, off...)
			fixes = append(fixes, offFixes...)
		}
		if a.PF4 != nil && a.PF4.Driver == vf.DriverCxgb4 && len(a.PF4.Ports) > 0 && len(off) == 0 && len(a.PFs) > 0 {
			oks = append(oks, fmt.Sprintf("%s: PF4 up with %s, PF0-3 bound", a.Slot, plural(len(a.PF4.Ports), "port")))
		}
	}
	switch {
	case len(fails) > 0:
		return Result{Status: Fail, Finding: strings.Join(append(fails, warns...), "; "), Fix: strings.Join(fixes, "; ")}
	case len(warns) > 0:
		return Result{Status: Warn, Finding: strings.Join(warns, "; ") + ": no VFs can be created there", Fix: strings.Join(fixes, "; ")}
	}
	return Result{Status: OK, Finding: strings.Join(oks, "; ")}
}

func checkVFDrivers(f *Facts) Result {
	var missing, mods []string
	for _, d := range []struct{ name, role string }{
		{vf.DriverCxgb4VF, "VF netdevs for pods"},
		{vf.DriverVFIO, "VFs for DPDK"},
	} {
		if !f.Sysfs.Exists("bus/pci/drivers/" + d.name) {
			missing = append(missing, d.name+" ("+d.role+")")
			mods = append(mods, d.name)
		}
	}
	if len(missing) > 0 {
		return Result{Status: Warn, Finding: "not loaded: " + strings.Join(missing, ", "), Fix: "modprobe " + strings.Join(mods, " ")}
	}
	return Result{Status: OK, Finding: "cxgb4vf and vfio-pci are loaded"}
}

func checkVFs(f *Facts) Result {
	adapters, skip := f.adapters()
	if skip != nil {
		return *skip
	}
	var parts []string
	var first *vf.PF
	enabled, found, pfs, sriov := 0, 0, 0, 0
	for _, a := range adapters {
		for _, pf := range a.PFs {
			pfs++
			if pf.SRIOV {
				sriov++
			}
			if first == nil && pf.Driver == vf.DriverCxgb4 && pf.TotalVFs > 0 {
				first = pf
			}
			if pf.NumVFs > 0 {
				parts = append(parts, fmt.Sprintf("PF%d %s %d/%d", pf.Number, pf.Addr, pf.NumVFs, pf.TotalVFs))
			}
			enabled += pf.NumVFs
			found += len(pf.VFs)
		}
	}
	if pfs > 0 && sriov == 0 {
		return Result{
			Status:  Fail,
			Finding: "no VFs: no PF0-3 has SR-IOV (no sriov_totalvfs)",
			Fix:     "the adapter's firmware config gives PF0-3 no VFs: use one that does, such as Chelsio's default (16 VFs on each of PF0-3), then reload cxgb4",
		}
	}
	if enabled == 0 {
		fix := "echo N > " + sysPath("bus/pci/devices/<PF0>/sriov_numvfs")
		if first != nil {
			fix = fmt.Sprintf("echo N > %s (N up to %d)", sysPath("bus/pci/devices/"+first.Addr.String()+"/sriov_numvfs"), first.TotalVFs)
		}
		return Result{Status: Fail, Finding: "no VFs: sriov_numvfs is 0 on every PF0-3", Fix: fix + ", or chelsio-vf setup"}
	}
	if found < enabled {
		return Result{
			Status:  Warn,
			Finding: fmt.Sprintf("sriov_numvfs enables %d VFs (%s) but only %d are listed under bus/pci/devices", enabled, strings.Join(parts, ", "), found),
			Fix:     "check `dmesg` for VF errors; recreate the VFs: echo 0, then N, to the PF's sriov_numvfs",
		}
	}
	return Result{Status: OK, Finding: fmt.Sprintf("%s: %s", plural(enabled, "VF"), strings.Join(parts, ", "))}
}

func checkVFBinding(f *Facts) Result {
	if _, skip := f.adapters(); skip != nil {
		return *skip
	}
	vfs := f.HW.VFs()
	if len(vfs) == 0 {
		return notChecked("no VFs", CheckVFs)
	}
	var nk, nv int
	var unbound, other []string
	var fix string
	for _, v := range vfs {
		switch v.Driver {
		case vf.DriverCxgb4VF:
			nk++
		case vf.DriverVFIO:
			nv++
		default:
			if v.Driver == "" {
				unbound = append(unbound, v.Addr.String())
			} else {
				other = append(other, fmt.Sprintf("%s (%s)", v.Addr, v.Driver))
			}
			if fix == "" {
				fix = bindFix(v.Addr, v.Driver, vf.DriverCxgb4VF)
			}
		}
	}
	if len(unbound)+len(other) == 0 {
		return Result{Status: OK, Finding: fmt.Sprintf("%s: %d on cxgb4vf, %d on vfio-pci", plural(len(vfs), "VF"), nk, nv)}
	}
	var parts []string
	if len(unbound) > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d VFs unbound: %s", len(unbound), len(vfs), listed(unbound, 4)))
	}
	if len(other) > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d VFs on another driver: %s", len(other), len(vfs), listed(other, 4)))
	}
	if len(unbound)+len(other) > 1 {
		fix += ", and likewise for each VF listed"
	}
	return Result{Status: Warn, Finding: strings.Join(parts, "; "), Fix: fix + "; or chelsio-vf setup"}
}

func checkIOMMU(f *Facts) Result {
	groups, err := f.Sysfs.ReadDir("kernel/iommu_groups")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Result{Status: Warn, Finding: fmt.Sprintf("cannot read IOMMU groups: %v", err), Fix: "check --sysfs-root"}
	}
	var vfio, ungrouped, inGroup []string
	if f.HW != nil {
		for _, v := range f.HW.VFs() {
			if !v.IsVFIO() {
				continue
			}
			vfio = append(vfio, v.Addr.String())
			if v.IOMMUGroup < 0 {
				ungrouped = append(ungrouped, v.Addr.String())
			} else {
				inGroup = append(inGroup, strconv.Itoa(v.IOMMUGroup))
			}
		}
	}
	const fix = "enable the IOMMU: VT-d/AMD-Vi on in the firmware setup, `intel_iommu=on iommu=pt` (Intel) or `amd_iommu=on` (AMD) on the kernel command line, then reboot"
	switch {
	case len(vfio) > 0 && len(groups) == 0:
		return Result{Status: Warn, Finding: fmt.Sprintf("%s on vfio-pci but no IOMMU groups: vfio cannot hand them to user space", plural(len(vfio), "VF")), Fix: fix}
	case len(ungrouped) > 0:
		return Result{Status: Warn, Finding: "VFs on vfio-pci without an IOMMU group: " + listed(ungrouped, 4), Fix: fix}
	case len(vfio) > 0:
		return Result{Status: OK, Finding: fmt.Sprintf("%s; %s on vfio-pci, in %s %s", plural(len(groups), "IOMMU group"), plural(len(vfio), "VF"), pluralWord(len(inGroup), "group"), listed(inGroup, 8))}
	case len(groups) > 0:
		return Result{Status: OK, Finding: plural(len(groups), "IOMMU group") + "; no VF on vfio-pci"}
	}
	return Result{Status: OK, Finding: "no IOMMU groups; none needed: no VF on vfio-pci"}
}

func checkMTU(f *Facts) Result {
	if f.MTU <= 0 {
		return Result{Status: OK, Finding: "not checked (MTU 0)"}
	}
	adapters, skip := f.adapters()
	if skip != nil {
		return *skip
	}
	var names []string
	nPorts := 0
	for _, a := range adapters {
		if a.PF4 != nil {
			for _, p := range a.PF4.Ports {
				names = append(names, p.Netdev)
				nPorts++
			}
		}
	}
	for _, v := range f.HW.VFs() {
		if v.Netdev != "" {
			names = append(names, v.Netdev)
		}
	}
	if len(names) == 0 {
		return Result{Status: OK, Finding: "no port or VF netdev in this network namespace"}
	}
	var low, lowNames []string
	for _, n := range names {
		m, err := f.Sysfs.ReadInt("class/net/" + n + "/mtu")
		switch {
		case err != nil:
			low = append(low, n+" (unreadable)")
			lowNames = append(lowNames, n)
		case m < f.MTU:
			low = append(low, fmt.Sprintf("%s (%d)", n, m))
			lowNames = append(lowNames, n)
		}
	}
	if len(low) > 0 {
		fix := fmt.Sprintf("ip link set dev %s mtu %d", lowNames[0], f.MTU)
		if len(lowNames) > 1 {
			fix += ", and likewise for each netdev listed (ports first)"
		}
		return Result{Status: Warn, Finding: fmt.Sprintf("below MTU %d: %s", f.MTU, listed(low, 4)), Fix: fix}
	}
	return Result{Status: OK, Finding: fmt.Sprintf("%s and %s at MTU %d or more", plural(nPorts, "port"), plural(len(names)-nPorts, "VF netdev"), f.MTU)}
}

// readProc reads a file under the procfs root.
func (f *Facts) readProc(rel string) (string, error) { return readSmall(filepath.Join(f.Proc, rel)) }

// readSmall reads the first MiB of the file at p.
func readSmall(p string) (string, error) {
	fh, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, 1<<20))
	if err != nil {
		return "", &fs.PathError{Op: "read", Path: p, Err: innerErr(err)}
	}
	return string(b), nil
}

func checkSwap(f *Facts) Result {
	s, err := f.readProc("swaps")
	if err != nil {
		return Result{Status: Warn, Finding: fmt.Sprintf("cannot tell whether swap is on: %v", err), Fix: "check --proc-root (default /proc)"}
	}
	var on []string
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for _, l := range lines[1:] { // the first line is the header
		fl := strings.Fields(l)
		if len(fl) == 0 {
			continue
		}
		e := fl[0]
		if len(fl) >= 3 {
			if kb, err := strconv.ParseInt(fl[2], 10, 64); err == nil {
				e += fmt.Sprintf(" (%s, %s)", fl[1], size(kb<<10))
			}
		}
		on = append(on, e)
	}
	if len(on) > 0 {
		return Result{Status: Fail, Finding: "swap is on: " + listed(on, 4), Fix: "swapoff -a, and remove the swap entries from /etc/fstab (kubelet refuses to run with swap by default)"}
	}
	return Result{Status: OK, Finding: "swap is off"}
}

// moduleKey is how the kernel spells a module's name in /proc/modules and
// /sys/module: vfio-pci is vfio_pci there, and modprobe takes either.
func moduleKey(name string) string { return strings.ReplaceAll(name, "-", "_") }

// loadedModules reads <proc>/modules: the modules loaded now, by moduleKey.
// Built-in modules are absent from it; /sys/module lists both.
func (f *Facts) loadedModules() (map[string]bool, error) {
	loaded := map[string]bool{}
	s, err := f.readProc("modules")
	for _, l := range strings.Split(s, "\n") {
		if fl := strings.Fields(l); len(fl) > 0 {
			loaded[moduleKey(fl[0])] = true
		}
	}
	return loaded, err
}

func checkModules(f *Facts) Result {
	loaded, readErr := f.loadedModules()
	var missing []string
	for _, m := range []string{"br_netfilter", "overlay"} {
		if !loaded[m] && !f.Sysfs.Exists("module/"+m) {
			missing = append(missing, m)
		}
	}
	if len(missing) == 0 {
		return Result{Status: OK, Finding: "br_netfilter and overlay are loaded"}
	}
	finding := "not loaded: " + strings.Join(missing, ", ")
	if readErr != nil {
		finding += fmt.Sprintf(" (cannot read the module list: %v)", readErr)
	}
	return Result{Status: Warn, Finding: finding, Fix: "modprobe " + strings.Join(missing, " ") + "; to load at boot, list them in /etc/modules-load.d/k8s.conf"}
}

func checkSysctls(f *Facts) Result {
	var good, bad, set []string
	needBr := false
	for _, key := range []string{"net/bridge/bridge-nf-call-iptables", "net/ipv4/ip_forward"} {
		name := strings.ReplaceAll(key, "/", ".")
		s, err := f.readProc("sys/" + key)
		v := strings.TrimSpace(s)
		switch {
		case errors.Is(err, fs.ErrNotExist) && strings.HasPrefix(key, "net/bridge/"):
			bad = append(bad, name+" absent (br_netfilter not loaded)")
			needBr = true
		case err != nil:
			bad = append(bad, fmt.Sprintf("%s unreadable (%v)", name, innerErr(err)))
		case v != "1":
			bad = append(bad, name+" = "+v)
		default:
			good = append(good, name+" = 1")
			continue
		}
		set = append(set, name+"=1")
	}
	if len(bad) == 0 {
		return Result{Status: OK, Finding: strings.Join(good, ", ")}
	}
	fix := "sysctl -w " + strings.Join(set, " ") + "; to keep it, put the settings in /etc/sysctl.d/k8s.conf"
	if needBr {
		fix = "modprobe br_netfilter; " + fix
	}
	return Result{Status: Warn, Finding: strings.Join(bad, ", "), Fix: fix}
}

// program is what a check found of a program a runtime would execute.
type program struct {
	path string
	// problem says why the runtime could not execute it; empty when it could.
	problem   string
	missing   bool   // nothing at path
	irregular bool   // something other than a regular file at path
	desc      string // "<path> (<size>, mode <mode>)" when problem is empty
}

// statProgram looks at the program at p: an executable, non-empty regular file.
func statProgram(p string) program {
	st, err := os.Stat(p)
	pr := program{path: p}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		pr.problem, pr.missing = "no "+p, true
	case err != nil:
		pr.problem = fmt.Sprintf("cannot read %s: %v", p, innerErr(err))
	case !st.Mode().IsRegular():
		pr.problem, pr.irregular = p+" is not a regular file", true
	case st.Size() == 0:
		pr.problem = p + " is empty"
	case st.Mode().Perm()&0o111 == 0:
		pr.problem = fmt.Sprintf("%s is not executable (mode %04o)", p, st.Mode().Perm())
	default:
		pr.desc = fmt.Sprintf("%s (%s, mode %04o)", p, size(st.Size()), st.Mode().Perm())
	}
	return pr
}

func checkCNIBinary(f *Facts) Result {
	fix := "chelsio-vf install-cni --dest " + f.CNIBinDir
	if f.PluginName != PluginName {
		fix += " --name " + f.PluginName
	}
	pr := statProgram(filepath.Join(f.CNIBinDir, f.PluginName))
	switch {
	case pr.missing:
		return Result{Status: Fail, Finding: "not installed: " + pr.problem, Fix: fix}
	case pr.irregular:
		return Result{Status: Fail, Finding: pr.problem, Fix: "remove it, then " + fix}
	case pr.problem != "":
		return Result{Status: Fail, Finding: pr.problem, Fix: fix}
	}
	return Result{Status: OK, Finding: pr.desc}
}

func checkDevicePlugin(f *Facts) Result {
	const start = "start chelsio-sriov-dp on this node (its DaemonSet), with --device-plugin-dir "
	entries, err := os.ReadDir(f.DevicePluginDir)
	if err != nil {
		return Result{Status: Warn, Finding: fmt.Sprintf("cannot read %s: %v", f.DevicePluginDir, innerErr(err)), Fix: "is kubelet running? Point --device-plugin-dir at its device-plugin directory"}
	}
	var live, stale []string
	for _, e := range entries {
		n := e.Name()
		if !strings.HasPrefix(n, PluginName+"-") || !strings.HasSuffix(n, ".sock") {
			continue
		}
		if e.Type()&fs.ModeSocket == 0 {
			stale = append(stale, n+" (not a socket)")
			continue
		}
		c, err := net.DialTimeout("unix", filepath.Join(f.DevicePluginDir, n), f.DialTimeout)
		if err != nil {
			stale = append(stale, n)
			continue
		}
		_ = c.Close() // a probe: nothing was sent
		live = append(live, n)
	}
	switch {
	case len(live) > 0:
		return Result{Status: OK, Finding: "chelsio-sriov-dp listens on " + strings.Join(live, ", ")}
	case len(stale) > 0:
		return Result{Status: Warn, Finding: "nothing listens on " + strings.Join(stale, ", ") + ": chelsio-sriov-dp is not running", Fix: start + f.DevicePluginDir + "; it replaces stale sockets"}
	}
	return Result{Status: Warn, Finding: fmt.Sprintf("no %s-*.sock in %s: chelsio-sriov-dp is not running", PluginName, f.DevicePluginDir), Fix: start + f.DevicePluginDir}
}

// checkCNIState reads the CNI plugin's state directory as the plugin does: it
// must be usable (the plugin refuses one with links, loose modes or foreign
// owners), and it says what is waiting for the runtime's GC: attachments of pods
// whose network namespace is gone (their VF had not come back when DEL ran), and
// leases that DEL could not free because the IPAM plugin was missing.
func checkCNIState(f *Facts) Result {
	if _, err := os.Lstat(f.CNIStateDir); errors.Is(err, fs.ErrNotExist) {
		return Result{Status: OK, Finding: "no attachment yet (no " + f.CNIStateDir + ")"}
	}
	all, err := cnistore.Store{Dir: f.CNIStateDir}.Attachments()
	if err != nil {
		return Result{
			Status: Fail, Finding: "the CNI plugin cannot use its state: " + err.Error(),
			Fix: "see docs/errors.md, \"The state directory\"; until then ADD, DEL and GC refuse to run",
		}
	}
	var attached, gone, pending int
	ipam := map[string]bool{}
	for _, a := range all {
		switch {
		case a.Phase == cnistore.PhaseIPAMPending:
			pending++
			ipam[a.IPAMType] = true
		case a.Netns != "" && !exists(a.Netns):
			gone++
		default:
			attached++
		}
	}
	finding := plural(attached, "attachment")
	var fixes []string
	if gone > 0 {
		finding += ", " + plural(gone, "attachment") + " of pods whose network namespace is gone"
		fixes = append(fixes, "the runtime's next CNI GC gives their VFs back (an ADD of such a VF takes it over too)")
	}
	if pending > 0 {
		types := slices.Sorted(maps.Keys(ipam))
		finding += ", " + plural(pending, "lease") + " kept because DEL found no IPAM plugin (" + strings.Join(types, ", ") + ")"
		fixes = append(fixes, "install "+strings.Join(types, ", ")+" in "+f.CNIBinDir+"; the next GC, or a DEL of the attachment, frees the leases")
	}
	if len(fixes) > 0 {
		return Result{Status: Warn, Finding: finding, Fix: strings.Join(fixes, "; ")}
	}
	return Result{Status: OK, Finding: finding + " in " + f.CNIStateDir}
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// plural returns "1 port", "2 ports".
func plural(n int, noun string) string { return strconv.Itoa(n) + " " + pluralWord(n, noun) }

// pluralWord returns noun, or its plural when n is not 1.
func pluralWord(n int, noun string) string {
	if n == 1 {
		return noun
	}
	return noun + "s"
}

// listed joins items, naming no more than most of them: "a, b and 3 more".
func listed(items []string, most int) string {
	if len(items) <= most {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:most], ", "), len(items)-most)
}
