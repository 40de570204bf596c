// Package deviceplugin is the kubelet device plugin of chelsio-sriov: it advertises
// a node's Chelsio VFs as extended resources over kubelet's device-plugin API
// (v1beta1) and hands each to one container.
//
// The part that knows Chelsio is small: ChelsioScanner turns pkg/vf's discovery and
// the resource pools of the configuration into a DeviceTree, with each VF's health
// (VF present, driver unchanged, physical port link up). Manager, the framework,
// owns the rest: one gRPC server and socket per resource, registration with kubelet
// and re-registration when kubelet restarts, rescans on a short interval and on
// events, ListAndWatch updates, Allocate and preferred allocation, metrics.
package deviceplugin
