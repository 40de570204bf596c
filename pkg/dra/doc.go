// Package dra is the Dynamic Resource Allocation driver of chelsio-sriov, driver
// vf.chelsio.com: it publishes the node's Chelsio VFs as devices of ResourceSlices
// (devices.go, publish.go), and prepares and unprepares the ResourceClaims that
// kubelet hands it (prepare.go), writing a CDI spec and a Multus device-info file
// per claim and keeping a checkpoint of what it prepared (checkpoint.go).
//
// Discovery, health and the rescan triggers are the device plugin's
// (deviceplugin.ChelsioScanner, UeventWatcher, LinkWatcher); the served-by locks
// (pkg/servedby) keep the two from offering the same VF.
package dra
