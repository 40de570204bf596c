package cni

import (
	"errors"
	"fmt"
	"time"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cnistore"
)

// AllowNodeDirs adds to p's defaults the directories that the node's administrator
// allows for logFile and dataDir: EnvLogDirs and EnvDataDirs, read with getenv from
// the environment of the process, which the runtime (or the Multus daemon, or the
// node agent's manifest) sets and no network config can change.
func (p *Plugin) AllowNodeDirs(getenv func(string) string) error {
	logDirs, err := ParseDirList(EnvLogDirs, getenv(EnvLogDirs))
	if err != nil {
		return err
	}
	dataDirs, err := ParseDirList(EnvDataDirs, getenv(EnvDataDirs))
	if err != nil {
		return err
	}
	p.LogDirs = append(p.LogDirs, logDirs...)
	p.DataDirs = append(p.DataDirs, dataDirs...)
	return nil
}

// Released is one attachment that Reconcile freed.
type Released struct {
	ContainerID, IfName, VF string
	Pod                     string        // namespace/name, when ADD recorded it
	Took                    time.Duration // the DEL's own time
}

// Reconcile frees, as DEL would, every attachment in the state directory dataDir
// whose pod's network namespace is gone: its VF goes home as it was, its PF-side
// settings and its lease are freed, its state removed. A runtime sends DEL when a
// pod ends, but not when the node or the runtime crashed meanwhile, and Multus sends
// GC only to the cluster network, never to a delegate such as this plugin; without
// Reconcile such an attachment would hold its lease (host-local keeps leases on
// disk, across reboots) and its state until some ADD happened to take its VF.
//
// An attachment whose namespace still exists is left alone, and so is one without
// a namespace (a vfio-pci VF): nothing on the node says whether its pod lives.
// cniPath is where the IPAM plugins are (CNI_PATH). Each DEL takes the VF's lock,
// so an ADD in progress is never raced. Errors of single attachments are joined;
// the others are still freed.
func (p *Plugin) Reconcile(dataDir, cniPath string) ([]Released, error) {
	all, lerr := cnistore.Store{Dir: dataDir}.Attachments()
	var out []Released
	errs := []error{lerr}
	for _, a := range all {
		if a.Netns == "" || alive(a.Netns) {
			continue
		}
		start := time.Now()
		args := &skel.CmdArgs{ContainerID: a.ContainerID, IfName: a.IfName, Netns: a.Netns, Path: cniPath, StdinData: a.NetConf}
		if err := p.Del(args); err != nil {
			errs = append(errs, fmt.Errorf("free %s %s (VF %s): %w", a.ContainerID, a.IfName, a.VF, err))
			continue
		}
		r := Released{ContainerID: a.ContainerID, IfName: a.IfName, VF: a.VF, Took: time.Since(start)}
		if a.PodName != "" {
			r.Pod = a.PodNamespace + "/" + a.PodName
		}
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}
