package node

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

const (
	// DefaultCNIConfDir is where container runtimes read CNI network configs.
	DefaultCNIConfDir = "/etc/cni/net.d"
	// DefaultIPAM is the IPAM plugin of the shipped NetworkAttachmentDefinition.
	DefaultIPAM = "whereabouts"
	// hostLocal is the reference IPAM plugin, which keeps its leases on the node.
	hostLocal = "host-local"
	// bootModulesConf is the file the boot-modules fix writes.
	bootModulesConf = "/etc/modules-load.d/chelsio-sriov.conf"
)

// cniConfExts are the extensions of the files a runtime reads as network configs.
var cniConfExts = []string{".conf", ".conflist", ".json"}

// checkMultus looks for Multus, which calls chelsio-sriov for a pod's extra
// networks: its network config in the CNI config directory (thick and thin
// Multus both write one, 00-multus.conf by default), or its binary (thin) or
// shim (thick) in the CNI binary directory.
func checkMultus(f *Facts) Result {
	var found []string
	entries, err := os.ReadDir(f.CNIConfDir)
	for _, e := range entries {
		n := e.Name()
		p := filepath.Join(f.CNIConfDir, n)
		if strings.Contains(strings.ToLower(n), "multus") && slices.Contains(cniConfExts, filepath.Ext(n)) && isRegular(p) {
			found = append(found, p)
		}
	}
	for _, n := range []string{"multus", "multus-shim"} {
		if pr := statProgram(filepath.Join(f.CNIBinDir, n)); pr.problem == "" {
			found = append(found, pr.path)
		}
	}
	if len(found) > 0 {
		return Result{Status: OK, Finding: "found " + strings.Join(found, ", ")}
	}
	finding := fmt.Sprintf("no Multus: no *multus*.conf or .conflist in %s, no multus or multus-shim in %s", f.CNIConfDir, f.CNIBinDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		finding += fmt.Sprintf(" (cannot read %s: %v)", f.CNIConfDir, innerErr(err))
	}
	return Result{
		Status: Warn, Finding: finding,
		Fix: "install Multus, its thick plugin DaemonSet and its NetworkAttachmentDefinition CRD (multus-cni's deployments/multus-daemonset-thick.yml holds both); if the runtime reads another config directory, pass --cni-conf-dir",
	}
}

func isRegular(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// checkIPAM looks for the IPAM plugin that the NetworkAttachmentDefinition names
// (f.IPAM): OK when it can be executed; WARN when only host-local can, which
// serves one node; FAIL when neither can.
func checkIPAM(f *Facts) Result {
	if err := CheckFileName(f.IPAM, DefaultIPAM); err != nil {
		return Result{Status: Fail, Finding: "--ipam: " + err.Error(), Fix: "pass the ipam type of the NetworkAttachmentDefinition, e.g. --ipam " + DefaultIPAM}
	}
	want := statProgram(filepath.Join(f.CNIBinDir, f.IPAM))
	hl := want
	if f.IPAM != hostLocal {
		hl = statProgram(filepath.Join(f.CNIBinDir, hostLocal))
	}
	switch {
	case want.problem == "" && hl.problem == "" && hl.path != want.path:
		return Result{Status: OK, Finding: want.desc + "; host-local too"}
	case want.problem == "":
		return Result{Status: OK, Finding: want.desc}
	case hl.problem == "":
		uses := "the NetworkAttachmentDefinition names " + f.IPAM
		if f.IPAM == DefaultIPAM {
			uses = "the shipped NAD uses " + DefaultIPAM
		}
		return Result{
			Status:  Warn,
			Finding: fmt.Sprintf("%s; only %s: host-local keeps leases per node: fine for one node; %s", want.problem, hl.path, uses),
			Fix:     installIPAMFix(f.IPAM, f.CNIBinDir) + "; or, on a single node with the host-local example NAD, run chelsio-vf doctor --ipam host-local",
		}
	}
	finding := want.problem
	if hl.path != want.path {
		finding += "; nor host-local: " + hl.problem
	}
	return Result{Status: Fail, Finding: finding, Fix: installIPAMFix(f.IPAM, f.CNIBinDir)}
}

// installIPAMFix says how to install the IPAM plugin name in dir.
func installIPAMFix(name, dir string) string {
	switch name {
	case DefaultIPAM:
		return "install whereabouts: its DaemonSet (k8snetworkplumbingwg/whereabouts, with its IPPool CRDs) copies the plugin to " + dir
	case hostLocal:
		return "install the CNI reference plugins (containernetworking/plugins) in " + dir
	}
	return "install " + name + " in " + dir
}

// checkBootModules checks that the VF drivers in use come back after a reboot:
// cxgb4vf always, vfio-pci when a VF is on it now. A module is loaded at boot
// when a modules-load.d/*.conf (bootModules) or <etc>/modules names it, or when it
// is built in (in /sys/module, not in /proc/modules).
func checkBootModules(f *Facts) Result {
	want := []string{vf.DriverCxgb4VF}
	if f.HW != nil && slices.ContainsFunc(f.HW.VFs(), (*vf.VF).IsVFIO) {
		want = append(want, vf.DriverVFIO)
	}
	named, unreadable := f.bootModules()
	loaded, procErr := f.loadedModules()
	var oks, missing []string
	for _, m := range want {
		k := moduleKey(m)
		switch {
		case named[k] != "":
			oks = append(oks, m+" in "+named[k])
		case procErr == nil && !loaded[k] && f.Sysfs.Exists("module/"+k):
			oks = append(oks, m+" built in")
		default:
			missing = append(missing, m)
		}
	}
	if len(missing) == 0 {
		return Result{Status: OK, Finding: strings.Join(oks, "; ")}
	}
	finding := fmt.Sprintf("not loaded at boot: %s (named in no %s/*.conf nor %s, not built in)",
		strings.Join(missing, ", "), strings.Join(bootModuleDirs(f.EtcRoot), "/*.conf, "), filepath.Join(f.EtcRoot, "modules"))
	if len(unreadable) > 0 {
		finding += "; " + strings.Join(unreadable, "; ")
	}
	fix := "echo " + want[0] + " > " + bootModulesConf
	if len(want) > 1 {
		fix = "printf '" + strings.Join(want, `\n`) + `\n' > ` + bootModulesConf
	}
	return Result{Status: Warn, Finding: finding, Fix: fix}
}

// bootModules reads the lists of modules loaded at boot: modules-load.d/*.conf in
// systemd's directories, where a file in <etc>/modules-load.d replaces one of the
// same name in /run, /usr/local/lib, /usr/lib or /lib (read under the parent of
// <etc> when its name is etc: /host for /host/etc), and <etc>/modules (Debian): the
// file that names each module, by moduleKey, and what could not be read.
func (f *Facts) bootModules() (named map[string]string, unreadable []string) {
	named = map[string]string{}
	var files []string
	seen := map[string]bool{}
	for _, dir := range bootModuleDirs(f.EtcRoot) {
		entries, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			unreadable = append(unreadable, fmt.Sprintf("cannot read %s: %v", dir, innerErr(err)))
		}
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".conf") && !seen[e.Name()] {
				seen[e.Name()] = true
				files = append(files, filepath.Join(dir, e.Name()))
			}
		}
	}
	for _, p := range append(files, filepath.Join(f.EtcRoot, "modules")) {
		s, err := readSmall(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			unreadable = append(unreadable, fmt.Sprintf("cannot read %s: %v", p, innerErr(err)))
		}
		for _, l := range strings.Split(s, "\n") {
			// One module a line, comments after # or ;; /etc/modules may add
			// parameters after the name.
			fl := strings.Fields(l)
			if len(fl) == 0 || strings.HasPrefix(fl[0], "#") || strings.HasPrefix(fl[0], ";") {
				continue
			}
			if k := moduleKey(fl[0]); named[k] == "" {
				named[k] = p
			}
		}
	}
	return named, unreadable
}

// bootModuleDirs lists systemd's modules-load.d directories, the first first:
// <etc>'s, then, when <etc> is named etc, those under its parent.
func bootModuleDirs(etc string) []string {
	dirs := []string{filepath.Join(etc, "modules-load.d")}
	if filepath.Base(etc) != "etc" {
		return dirs
	}
	root := filepath.Dir(etc)
	for _, d := range []string{"run", "usr/local/lib", "usr/lib", "lib"} {
		dirs = append(dirs, filepath.Join(root, d, "modules-load.d"))
	}
	return dirs
}
