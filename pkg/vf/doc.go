// Package vf models the Chelsio T4/T5/T6 hardware of a node as its sysfs shows it:
// adapters, their PF0-PF3 functions (the only ones with SR-IOV) with the cxgb4
// management netdev, PF4 with the port netdevs, and the Virtual Functions that
// cxgb4vf or vfio-pci drive.
//
// Everything is discovered from a sysfs.Root by following links (physfn, virtfnN,
// driver, net/), never by address arithmetic, and every sysfs-backed field cites its
// path. The Chelsio ID table (chelsio.go) names products; it is not a gate: a VF is any
// Chelsio function with function nibble 8 of a supported generation.
package vf
