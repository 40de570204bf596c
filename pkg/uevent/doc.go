// Package uevent reads and writes the kernel's kobject uevents: the messages the
// kernel multicasts on NETLINK_KOBJECT_UEVENT, group 1, when a device is added,
// removed, bound to a driver or unbound ("add@/devices/…\0ACTION=add\0…").
//
// Message is one uevent (Parse is strict, Marshal writes the kernel's form); Conn is
// a netlink socket that receives them (Listen) or sends them (Dial), in the calling
// thread's network namespace or in another (ListenAt, DialAt). The device plugin
// listens; the emulated node sends what the kernel would.
package uevent
