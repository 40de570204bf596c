package cni

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cnistore"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
)

// Plugin is the chelsio-sriov CNI plugin. The zero value is not usable; New fills
// the defaults of a real node.
type Plugin struct {
	// Root is the sysfs root the VFs are read from.
	Root sysfs.Root
	// HostNS is the node's network namespace, where VF netdevs live when no pod has
	// them; nil means the calling thread's.
	HostNS ns.NetNS
	// Stderr receives log lines when the NetConf names no logFile.
	Stderr io.Writer
	// LockTimeout bounds the wait for a VF's lock (then code 11).
	LockTimeout time.Duration
	// ReturnTimeout bounds DEL's wait for a VF netdev that the kernel is bringing
	// back to the host after its pod's namespace was destroyed.
	ReturnTimeout time.Duration
	// IPAMTimeout bounds each call of the IPAM plugin.
	IPAMTimeout time.Duration
	// Fault, when set, is called after each change ADD or DEL makes, with the step's
	// name (AddSteps, DelSteps); an error it returns fails the operation there (fault
	// injection in tests). It may be called from more than one goroutine.
	Fault func(step string) error
	// KernelDevice, when set, replaces how the plugin asks the kernel which PCI
	// device is under a link (IFLA_PARENT_DEV_NAME, else ETHTOOL_GDRVINFO's bus
	// info): tests play kernels with and without the parent attribute with it.
	KernelDevice KernelDevice
	// LogDirs are the directories a NetConf's logFile may be in, at any depth, and
	// DataDirs those its dataDir may be, or be below: a NetConf, which whoever may
	// write a NetworkAttachmentDefinition chooses, must not make a root process
	// write where it likes. New sets AllowedLogDir and AllowedDataDir; the node's
	// administrator adds more through the plugin's environment (EnvLogDirs,
	// EnvDataDirs, which main reads). Absolute, clean paths.
	LogDirs, DataDirs []string
}

// New returns a Plugin for the node whose sysfs is at root.
func New(root sysfs.Root, stderr io.Writer) *Plugin {
	return &Plugin{
		Root: root, Stderr: stderr, LockTimeout: 60 * time.Second, ReturnTimeout: 5 * time.Second, IPAMTimeout: 60 * time.Second,
		LogDirs: []string{AllowedLogDir}, DataDirs: []string{AllowedDataDir},
	}
}

// Steps of ADD that change something, in order; Fault receives these names.
const (
	StepState     = "state"     // the attachment's state file (phase adding)
	StepPFVLAN    = "pf-vlan"   // ip link set <mgmt> vf N vlan V
	StepPFMAC     = "pf-mac"    // ip link set <mgmt> vf N mac M
	StepPFRate    = "pf-rate"   // ip link set <mgmt> vf N max_tx_rate R
	StepPFState   = "pf-state"  // ip link set <mgmt> vf N state S
	StepMove      = "move"      // ip link set <vf> netns <pod> name <ifname>
	StepMTU       = "mtu"       // ip link set <ifname> mtu M (in the pod)
	StepMAC       = "mac"       // ip link set <ifname> address M (in the pod)
	StepUp        = "up"        // ip link set <ifname> up
	StepIPAM      = "ipam"      // IPAM ADD
	StepAddresses = "addresses" // addresses and routes in the pod
	StepAttached  = "attached"  // the state file (phase attached)
)

// AddSteps lists ADD's steps in order (for fault-injection tests).
var AddSteps = []string{StepState, StepPFVLAN, StepPFMAC, StepPFRate, StepPFState, StepMove, StepMTU, StepMAC, StepUp, StepIPAM, StepAddresses, StepAttached}

// Steps of DEL (and of GC, which releases the same way) that change something.
// An interface-free IPAM's DEL starts once the link is down in the pod and runs
// while the VF moves home, so StepDelIPAM may come anywhere after StepDelLink (or
// before it, when there is no link to take down) and before StepDelState.
const (
	StepDelIPAM  = "del-ipam"  // IPAM DEL
	StepDelLink  = "del-link"  // the netdev down, with its host MTU and MAC, in the pod
	StepDelMove  = "del-move"  // ip link set <ifname> netns <host> name <host name>
	StepDelPF    = "del-pf"    // the PF-side settings put back
	StepDelState = "del-state" // the state file removed
)

// DelSteps lists DEL's steps (for fault-injection tests).
var DelSteps = []string{StepDelIPAM, StepDelLink, StepDelMove, StepDelPF, StepDelState}

func (p *Plugin) fault(step string) error {
	if p.Fault == nil {
		return nil
	}
	if err := p.Fault(step); err != nil {
		return fmt.Errorf("injected fault after %s: %w", step, err)
	}
	return nil
}

// fault marks the end of step in the invocation's timeline and calls p.Fault.
func (inv *invocation) fault(step string) error {
	inv.tl.mark(step)
	return inv.p.fault(step)
}

// delStep is the step callback of DEL's moveBack: fault, and linkDown once the
// link is down in the pod.
func (inv *invocation) delStep(step string) error {
	if step == StepDelLink && inv.linkDown != nil {
		inv.linkDown()
	}
	return inv.fault(step)
}

// errIPAMMissing marks an IPAM plugin that is not in CNI_PATH.
var errIPAMMissing = errors.New("IPAM plugin not found")

// execIPAM runs the IPAM plugin for one verb with the runtime's arguments.
func (p *Plugin) execIPAM(command, typ string, netconf []byte, args *skel.CmdArgs) (types.Result, error) {
	return p.execIPAMWith(ipamExec{}, command, typ, netconf, args)
}

// execIPAMWith is execIPAM through x.
func (p *Plugin) execIPAMWith(x ipamExec, command, typ string, netconf []byte, args *skel.CmdArgs) (types.Result, error) {
	paths := filepath.SplitList(args.Path)
	path, err := invoke.FindInPath(typ, paths)
	if err != nil {
		return nil, fmt.Errorf("%w: %q in CNI_PATH %q", errIPAMMissing, typ, args.Path)
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.IPAMTimeout)
	defer cancel()
	a := &invoke.Args{Command: command, ContainerID: args.ContainerID, NetNS: args.Netns, PluginArgsStr: args.Args, IfName: args.IfName, Path: args.Path}
	if command == "ADD" {
		r, err := invoke.ExecPluginWithResult(ctx, path, netconf, a, x)
		if err != nil {
			return nil, fmt.Errorf("IPAM %s ADD: %w", typ, err)
		}
		return r, nil
	}
	if err := invoke.ExecPluginWithoutResult(ctx, path, netconf, a, x); err != nil {
		return nil, fmt.Errorf("IPAM %s %s: %w", typ, command, err)
	}
	return nil, nil
}

// invocation is what every verb starts with: the NetConf, its logger, the store.
type invocation struct {
	p     *Plugin
	tl    *timeline
	verb  string
	args  *skel.CmdArgs
	conf  *NetConf
	log   *slog.Logger
	store cnistore.Store
	close func()
	// linkDown, in a DEL, starts what waits for the VF's link to be down in the
	// pod (IPAM DEL: startIPAMDel); delStep calls it.
	linkDown func()
}

// end closes the log, after logging the failure *err of a verb of one attachment
// (ADD, DEL, CHECK): GC and STATUS leave theirs to the runtime.
func (inv *invocation) end(err *error) {
	if *err != nil && keyed(inv.verb) {
		inv.log.Error(inv.verb+" failed", "err", *err)
	}
	inv.tl.log(inv.log)
	inv.close()
}

// runVerb runs do between begin and end: the verbs that need nothing else of their
// own around begin.
func (p *Plugin) runVerb(args *skel.CmdArgs, verb string, do func(*invocation) error) (err error) {
	inv, err := p.begin(args, verb)
	if err != nil {
		return err
	}
	defer inv.end(&err)
	return do(inv)
}

// Check verifies the attachment against prevResult: the interface exists in the
// pod, is the VF, has the MTU and MAC of the result and every address; then IPAM
// CHECK.
func (p *Plugin) Check(args *skel.CmdArgs) error { return p.runVerb(args, "CHECK", p.check) }

// GC releases every attachment that is not in cni.dev/valid-attachments (or
// cni.dev/attachments): VF back to the host, PF-side settings and lease freed.
// It goes on past errors and reports them all; then it forwards GC to IPAM.
func (p *Plugin) GC(args *skel.CmdArgs) error { return p.runVerb(args, "GC", p.gc) }

// Status reports whether the node can serve ADDs: the state directory is writable,
// and the IPAM plugin (when configured) reports ready. Failures are code 50.
func (p *Plugin) Status(args *skel.CmdArgs) error { return p.runVerb(args, "STATUS", p.status) }

// begin loads the NetConf, refuses a dataDir outside the allowed directories,
// checks CNI_CONTAINERID and CNI_IFNAME for the verbs that take them and what the
// verb would meet in the state directory, then opens the log (its logFile within
// the allowed directories too): a refused invocation creates no file, the log
// included.
func (p *Plugin) begin(args *skel.CmdArgs, verb string) (*invocation, error) {
	tl := &timeline{}
	tl.mark("begin")
	conf, err := Load(args.StdinData, args.Args)
	if err != nil {
		return nil, err
	}
	if err := p.confineDataDir(conf.DataDir); err != nil {
		return nil, err
	}
	store := cnistore.Store{Dir: conf.DataDir}
	switch {
	case keyed(verb):
		if err := cnistore.CheckKey(args.ContainerID, args.IfName); err != nil {
			return nil, err
		}
		err = store.Preflight(args.ContainerID, args.IfName, conf.VF)
	case verb == "GC":
		err = store.Preflight("", "", conf.VF)
	}
	// STATUS checks the state directory itself: its refusal is a readiness answer.
	if err != nil {
		return nil, err
	}
	log, closeLog, err := p.openConfinedLog(conf)
	if err != nil && (verb == "DEL" || verb == "GC") {
		// Freeing needs no log file: a refused logFile must not keep a VF or a lease.
		logErr := err
		noFile := *conf
		noFile.LogFile = ""
		log, closeLog, err = openLog(&noFile, p.Stderr)
		log.Warn("logFile refused; logging to stderr", "err", logErr)
	}
	if err != nil {
		return nil, err
	}
	log = log.With("verb", verb, "container", args.ContainerID, "ifname", args.IfName)
	tl.mark("config")
	return &invocation{p: p, tl: tl, verb: verb, args: args, conf: conf, log: log, store: store, close: closeLog}, nil
}

// keyed reports whether verb acts on one attachment, named by CNI_CONTAINERID and
// CNI_IFNAME.
func keyed(verb string) bool { return verb == "ADD" || verb == "DEL" || verb == "CHECK" }

// openConfinedLog is openLog for a NetConf's logFile, which must be within p.LogDirs.
func (p *Plugin) openConfinedLog(c *NetConf) (*slog.Logger, func(), error) {
	if err := p.confineLogFile(c.LogFile); err != nil {
		return nil, nil, err
	}
	return openLog(c, p.Stderr)
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
