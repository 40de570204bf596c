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
	Why                     string        // "its network namespace is gone", or "kubelet no longer lists its pod"
	Took                    time.Duration // the DEL's own time
}

// Reasons of Released.Why.
const (
	WhyNetnsGone = "its network namespace is gone"
	WhyPodGone   = "kubelet no longer lists its pod"
)

// PodCheck is how Reconcile asks kubelet which pods still run (its pod-resources
// API), besides looking for their network namespaces.
type PodCheck struct {
	// Pods lists the pods kubelet runs, by "namespace/name". An error, or a list
	// without any pod (a kubelet that is starting lists not even the node's
	// DaemonSets), leaves only the namespaces to go by for the round.
	Pods func() (map[string]bool, error)
	// Grace: an attachment younger than Grace is never freed because kubelet does
	// not list its pod, since the runtime's ADD may come before kubelet's listing.
	Grace time.Duration
	// Confirm is the pause before the second list: a pod counts as gone only when
	// both lists leave it out (default 1 s).
	Confirm time.Duration
}

// Reconcile frees, as DEL would, every attachment in the state directory dataDir
// whose pod's network namespace is gone, and, with pods, every attachment at least
// pods.Grace old whose pod kubelet no longer lists: its VF goes home as it was, its
// PF-side settings and its lease are freed, its state removed. A runtime sends DEL
// when a pod ends, but not when the node or the runtime crashed meanwhile, and
// Multus sends GC only to the cluster network, never to a delegate such as this
// plugin; without Reconcile such an attachment would hold its lease (host-local
// keeps leases on disk, across reboots) and its state until some ADD happened to
// take its VF.
//
// Without pods (nil, or kubelet not answering), an attachment whose namespace
// still exists is left alone, and so is one without a namespace (a vfio-pci VF):
// nothing on the node says whether its pod lives; nor is one whose pod ADD did not
// record (no K8S_POD_NAME) ever freed for its pod's absence. cniPath is where the
// IPAM plugins are (CNI_PATH). Each DEL takes the VF's lock, so an ADD in progress
// is never raced. Errors of single attachments are joined; the others are still
// freed.
func (p *Plugin) Reconcile(dataDir, cniPath string, pods *PodCheck) ([]Released, error) {
	all, lerr := cnistore.Store{Dir: dataDir}.Attachments()
	gone := pods.goneOf(all)
	var out []Released
	errs := []error{lerr}
	for _, a := range all {
		why := WhyPodGone
		switch {
		case a.Netns != "" && !alive(a.Netns):
			why = WhyNetnsGone
		case !gone[a]:
			continue
		}
		start := time.Now()
		args := &skel.CmdArgs{ContainerID: a.ContainerID, IfName: a.IfName, Netns: a.Netns, Path: cniPath, StdinData: a.NetConf}
		if err := p.Del(args); err != nil {
			errs = append(errs, fmt.Errorf("free %s %s (VF %s): %w", a.ContainerID, a.IfName, a.VF, err))
			continue
		}
		r := Released{ContainerID: a.ContainerID, IfName: a.IfName, VF: a.VF, Why: why, Took: time.Since(start)}
		if a.PodName != "" {
			r.Pod = a.PodNamespace + "/" + a.PodName
		}
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}

// goneOf returns the attachments of all whose pod kubelet listed in neither of two
// lists, Confirm apart, and that are at least Grace old; none when c is nil or a
// list is unusable.
func (c *PodCheck) goneOf(all []*cnistore.Attachment) map[*cnistore.Attachment]bool {
	if c == nil || c.Pods == nil {
		return nil
	}
	var cands []*cnistore.Attachment
	first, ok := c.list()
	for _, a := range all {
		if ok && a.PodName != "" && time.Since(a.Created) >= c.Grace && !first[a.PodNamespace+"/"+a.PodName] {
			cands = append(cands, a)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	confirm := c.Confirm
	if confirm <= 0 {
		confirm = time.Second
	}
	time.Sleep(confirm)
	second, ok := c.list()
	if !ok {
		return nil
	}
	out := map[*cnistore.Attachment]bool{}
	for _, a := range cands {
		if !second[a.PodNamespace+"/"+a.PodName] {
			out[a] = true
		}
	}
	return out
}

// list is one usable list of kubelet's pods.
func (c *PodCheck) list() (map[string]bool, bool) {
	pods, err := c.Pods()
	return pods, err == nil && len(pods) > 0
}
