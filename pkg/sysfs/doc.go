// Package sysfs reads and writes files under a sysfs root.
//
// A Root is a directory that is laid out like /sys: "/sys" on a node, a fake tree
// under t.TempDir() in tests, or an emulated worker's tree. Paths given to its methods
// are relative to the root ("bus/pci/devices/0000:81:00.0/vendor"). Every error names
// the full path it concerns. The package knows nothing about any vendor.
package sysfs
