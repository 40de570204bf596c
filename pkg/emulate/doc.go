// Package emulate runs an emulated Chelsio node on any Linux machine with network
// namespaces: one or more workers, each a network namespace plus a fake sysfs tree
// shaped exactly like a T4/T5/T6 adapter (package sysfstree), whose VF and port netdevs
// are real veth ends. VF k of worker 1 and VF k of worker 2 are the two ends of one
// veth (the cable between two nodes); so are their ports.
//
// A small watcher process (Serve) keeps each tree in step with its worker's network
// namespace as the kernel keeps sysfs: when a VF netdev leaves the namespace (moved
// into a pod), comes back or is renamed, its net/<name> entry follows, and its mtu,
// address and operstate files follow the link.
//
// The watcher also emulates the kernel's refund of a physical netdev. When a pod's
// network namespace is destroyed while a VF netdev is in it, the kernel returns the
// netdev to the host namespace, down, keeping the name it had in the pod (dev%d, the
// lowest free, if that name is taken there), its MAC and its MTU, and a CNI DEL after
// "netns gone" finds it there. A veth end, instead, is destroyed with its namespace,
// and its peer with it. So while a VF is away from its worker, the watcher looks for
// it by its alternative name every 100 ms in every namespace it can reach (named under
// /run/netns, mounted elsewhere, or entered by a process: opened, read and closed at
// once, so as not to keep a deleted namespace alive), and notes its name, MAC and MTU.
// When neither end of the VF's veth is found in two consecutive looks, or in one look
// that follows an RTM_DELLINK of an end in its worker namespace (a move into a pod
// also produces one), it recreates the pair with the same alternative names: the VF
// end in its worker namespace under its last seen name (or dev%d), MAC and MTU, down,
// and the cable peer likewise in its own worker (or the fabric namespace). The trees
// follow through the usual link events, and the watcher log says
// "worker 1: 0000:81:01.4 returned to the host as net1 (pod namespace gone)".
//
// One emulation artifact: since a veth pair dies as a whole, deleting a pod's
// namespace also returns the cable peer of its VF to the peer's worker, down and
// without its addresses, even when the peer was in another pod that still exists.
// Two limits: the watcher learns a VF's name, MAC and MTU in a pod by looking, so a
// change made less than 100 ms before the namespace is deleted may be lost; and a
// namespace that only an open file descriptor holds (no mount, no process) is out of
// its sight, so a VF in one, with its peer also away, would be taken for destroyed.
//
// Everything Up creates carries one name prefix (Config.Name, default "chelsio-emu"):
// the state directory /run/<name>, the namespaces <name>-w<N>, the netdevs' alternative
// names <name>-w<N>.<pci address> (<name>-fabric.<pci address> in the fabric
// namespace). Down removes all of it and nothing else.
package emulate
