//go:build tools

// Package tools pins the whereabouts IPAM plugin that make cni-plugins and the
// end-to-end tests build into bin/cni/whereabouts. It is a module of its own:
// whereabouts pins a Kubernetes client older than the one of the main module.
package tools

import _ "github.com/k8snetworkplumbingwg/whereabouts/cmd"
