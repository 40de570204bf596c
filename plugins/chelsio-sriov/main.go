// Command chelsio-sriov is the CNI plugin that attaches a Chelsio VF to a pod. It
// only wires package cni to the CNI skeleton; see README.md for the configuration.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	cniversion "github.com/containernetworking/cni/pkg/version"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cni"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/version"
)

// supported are the CNI spec versions the plugin speaks.
var supported = cniversion.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

func init() {
	// Namespace switches are per thread: keep main on one.
	runtime.LockOSThread()
}

func main() {
	about := "CNI plugin " + version.Line("chelsio-sriov")
	// A runtime always sets CNI_COMMAND (and CNI_COMMAND=VERSION prints only the
	// JSON the spec asks for); --version is for a person, who sets none.
	if len(os.Args) == 2 && os.Args[1] == "--version" && os.Getenv("CNI_COMMAND") == "" {
		fmt.Printf("%s\nCNI protocol versions supported: %s\n", about, strings.Join(supported.SupportedVersions(), ", "))
		return
	}
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
	}, supported, about)
}
