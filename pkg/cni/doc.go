// Package cni is the chelsio-sriov CNI plugin: it attaches a Chelsio VF to a pod
// (ADD), gives it back intact (DEL), and implements CHECK, STATUS and GC, for CNI spec
// versions 0.3.0 to 1.1.0.
//
// The plugin is a value (Plugin) whose sysfs root, host network namespace and
// fault hooks are fields, so that tests drive it as a function; plugins/chelsio-sriov
// wires it to skel. Configuration (NetConf) is every sriov-cni key plus mtu and
// dataDir, loaded strictly and validated before anything changes. Each attachment
// has a state file (package cnistore), written before the first change, so that DEL
// and GC can undo an ADD that failed, crashed or lost its network namespace.
//
// One file per verb: add.go (ADD as named steps, from preflight to the result),
// del.go, check.go, status.go and gc.go. What they share: conf.go and keys.go (the
// NetConf), confine.go and log.go (where a NetConf may have the plugin write),
// lookup.go (the VF and its owner), pf.go (the PF-side settings, as one table of
// set and undo), move.go, identity.go, netlink.go and addr.go (the netdev between
// namespaces, and what it carries in the pod), ipamexec.go, and errors.go, where
// every error gets its CNI code.
package cni
