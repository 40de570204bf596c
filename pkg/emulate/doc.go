// Package emulate runs an emulated Chelsio node on any Linux machine with network
// namespaces: one or more workers, each a network namespace plus a fake sysfs tree
// shaped exactly like a T4/T5/T6 adapter (package vftest), whose VF and port netdevs
// are real veth ends. VF k of worker 1 and VF k of worker 2 are the two ends of one
// veth (the cable between two nodes); so are their ports.
//
// A small watcher process (Serve) keeps each tree in step with its worker's network
// namespace as the kernel keeps sysfs: when a VF netdev leaves the namespace (moved
// into a pod), comes back or is renamed, its net/<name> entry follows, and its mtu,
// address and operstate files follow the link.
//
// Everything Up creates carries one name prefix (Config.Name, default "chelsio-emu"):
// the state directory /run/<name>, the namespaces <name>-w<N>, the netdevs' alternative
// names <name>-w<N>.<pci address>. Down removes all of it and nothing else.
package emulate
