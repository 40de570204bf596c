package main

import (
	"fmt"
	"io"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cnistore"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/node"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
)

func cmdDoctor(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("doctor", "doctor [--json] [--sysfs-root DIR] [--proc-root DIR] [--cni-bin-dir DIR] [--cni-conf-dir DIR] [--ipam NAME] [--etc-root DIR] [--cni-state-dir DIR] [--device-plugin-dir DIR] [--policy-status-file FILE] [--mtu N]", stderr)
	asJSON := fs.Bool("json", false, `print {"checks":[{"name","status","finding","fix"}],"ok":bool}`)
	root := sysfsRootFlag(fs)
	proc := fs.String("proc-root", "/proc", "procfs root: swaps, modules, sys/net/...")
	cniDir := fs.String("cni-bin-dir", node.DefaultCNIBinDir, "directory that must hold the "+node.PluginName+" CNI plugin")
	confDir := fs.String("cni-conf-dir", node.DefaultCNIConfDir, "the runtime's CNI config directory, where Multus writes its config")
	ipam := fs.String("ipam", node.DefaultIPAM, "the IPAM plugin the NetworkAttachmentDefinition names, which --cni-bin-dir must hold")
	etc := fs.String("etc-root", "/etc", "directory holding modules-load.d and modules, which load modules at boot")
	stateDir := fs.String("cni-state-dir", cnistore.DefaultDir, "the CNI plugin's dataDir (its state)")
	dpDir := fs.String("device-plugin-dir", node.DefaultDevicePluginDir, "kubelet's device-plugin directory, where chelsio-sriov-dp's sockets live")
	policyStatus := fs.String("policy-status-file", node.DefaultPolicyStatusFile, "where chelsio-vf policy reports its last round")
	mtu := fs.Int("mtu", 9000, "least MTU of port and VF netdevs (0: do not check)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := node.CheckFileName(*ipam, node.DefaultIPAM); err != nil {
		return fmt.Errorf("doctor: --ipam: %w", err)
	}
	rep := node.Doctor(node.Config{
		Sysfs:            sysfs.Root(*root),
		Proc:             *proc,
		CNIBinDir:        *cniDir,
		CNIConfDir:       *confDir,
		IPAM:             *ipam,
		EtcRoot:          *etc,
		CNIStateDir:      *stateDir,
		DevicePluginDir:  *dpDir,
		PolicyStatusFile: *policyStatus,
		MTU:              *mtu,
	})
	if *asJSON {
		if err := writeJSON(stdout, rep); err != nil {
			return err
		}
	} else if err := rep.WriteText(stdout); err != nil {
		return err
	}
	if !rep.OK {
		return errReported // every failure is in the report
	}
	return nil
}
