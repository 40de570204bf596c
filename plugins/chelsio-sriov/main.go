// Command chelsio-sriov is the CNI plugin that attaches a Chelsio VF to a pod. It
// only wires package cni to the CNI skeleton; see README.md for the configuration.
package main

import (
	"os"
	"runtime"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cni"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
)

// buildVersion is set at build time with -ldflags "-X main.buildVersion=…".
var buildVersion = "dev"

func init() {
	// Namespace switches are per thread: keep main on one.
	runtime.LockOSThread()
}

func main() {
	p := cni.New(sysfs.FromEnv(), os.Stderr)
	p.Fault = faultHook()
	setupErr := p.AllowNodeDirs(os.Getenv)
	wrap := func(f func(*skel.CmdArgs) error) func(*skel.CmdArgs) error {
		return func(args *skel.CmdArgs) error {
			if setupErr != nil {
				return cni.AsCNIError(setupErr)
			}
			if err := f(args); err != nil {
				return cni.AsCNIError(err)
			}
			return nil
		}
	}
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add: wrap(func(args *skel.CmdArgs) error {
			r, err := p.Add(args)
			if err != nil {
				return err
			}
			return r.Print()
		}),
		Del:    wrap(p.Del),
		Check:  wrap(p.Check),
		Status: wrap(p.Status),
		GC:     wrap(p.GC),
	}, version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"), "chelsio-sriov CNI plugin "+buildVersion)
}
