// Package cni is the chelsio-sriov CNI plugin: it attaches a Chelsio VF to a pod
// (ADD), gives it back intact (DEL), and implements CHECK, STATUS and GC, for CNI spec
// versions 0.3.0 to 1.1.0.
//
// The plugin is a value (Plugin) whose sysfs root, host network namespace and
// fault hooks are fields, so that tests drive it as a function; plugins/chelsio-sriov
// wires it to skel. Configuration (NetConf) is every sriov-cni key plus mtu and
// dataDir, loaded strictly and validated before anything changes. Each attachment
// has a state file, written before the first change, so that DEL and GC can undo an
// ADD that failed, crashed or lost its network namespace.
package cni
