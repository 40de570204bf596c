package deployments_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// podMonitor is the part of prometheus-operator's PodMonitor the component uses.
type podMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector            metav1.LabelSelector `json:"selector"`
		PodMetricsEndpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path"`
			Interval string `json:"interval"`
		} `json:"podMetricsEndpoints"`
	} `json:"spec"`
}

// nodeFeatureRule is the part of Node Feature Discovery's NodeFeatureRule the
// component uses.
type nodeFeatureRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Rules []struct {
			Name          string            `json:"name"`
			Labels        map[string]string `json:"labels"`
			MatchFeatures []struct {
				Feature          string `json:"feature"`
				MatchExpressions map[string]struct {
					Op    string   `json:"op"`
					Value []string `json:"value"`
				} `json:"matchExpressions"`
			} `json:"matchFeatures"`
		} `json:"rules"`
	} `json:"spec"`
}

// nfdLabel is the label Node Feature Discovery gives a node with a PCI device of
// class 0200 (Ethernet) from vendor 1425 (Chelsio).
const nfdLabel = "feature.node.kubernetes.io/pci-0200_1425.present"

// metricsPorts are the ports of /metrics, /healthz and /livez: not in 9100-9999, which
// Prometheus has given out to other exporters.
var metricsPorts = map[string]int32{"chelsio-sriov-dp": 29100, "chelsio-vf-policy": 29101}

// TestDaemonSetsRunOnChelsioNodes: every DaemonSet selects the nodes NFD labels
// as having a Chelsio adapter, tolerates every taint, and is ready only when it
// works; the metrics are on the node's address, in a port named metrics.
func TestDaemonSetsRunOnChelsioNodes(t *testing.T) {
	var n int
	for _, d := range load(t) {
		ds, ok := d.obj.(*appsv1.DaemonSet)
		if !ok {
			continue
		}
		n++
		for _, p := range checkOperable(ds, nfdLabel) {
			t.Errorf("%s: %s", d.file, p)
		}
	}
	if n != 4 {
		t.Errorf("%d DaemonSets, want the device plugin, the CNI installer, the policy agent and the DRA driver", n)
	}
}

// checkOperable returns what keeps ds from being operated as docs/install.md says.
func checkOperable(ds *appsv1.DaemonSet, label string) []string {
	var out []string
	bad := func(f string, a ...any) { out = append(out, ds.Name+": "+fmt.Sprintf(f, a...)) }
	spec := ds.Spec.Template.Spec
	if spec.NodeSelector[label] != "true" || spec.NodeSelector["kubernetes.io/os"] != "linux" {
		bad("nodeSelector %v, want %s=true and kubernetes.io/os=linux", spec.NodeSelector, label)
	}
	tolerateAll := false
	for _, tol := range spec.Tolerations {
		tolerateAll = tolerateAll || (tol.Operator == corev1.TolerationOpExists && tol.Key == "" && tol.Effect == "")
	}
	if !tolerateAll {
		bad("tolerations %v: none tolerates every taint (operator Exists, no key, no effect)", spec.Tolerations)
	}
	for _, c := range spec.Containers {
		if c.ReadinessProbe == nil {
			bad("container %s has no readiness probe", c.Name)
		}
		// /healthz is 503 while a binary waits for kubelet or the API server; a
		// liveness probe on it would restart the pod for what a restart cannot mend.
		if l := c.LivenessProbe; l != nil && l.HTTPGet != nil && l.HTTPGet.Path != "/livez" {
			bad("container %s: liveness probe asks %s, want /livez", c.Name, l.HTTPGet.Path)
		}
		if want, ok := metricsPorts[ds.Name]; ok {
			out = append(out, checkMetrics(ds.Name, spec, c, want)...)
		}
	}
	return out
}

// checkMetrics: the container serves /metrics, /healthz and /livez on the node's
// address (HOST_IP from the downward API), at want, in a port named metrics, which
// its probes use: readiness /healthz, liveness /livez.
func checkMetrics(name string, spec corev1.PodSpec, c corev1.Container, want int32) []string {
	var out []string
	bad := func(f string, a ...any) { out = append(out, name+": "+fmt.Sprintf(f, a...)) }
	if !spec.HostNetwork {
		bad("no host network: the metrics port would be the pod's, not the node's")
	}
	var port int32
	for _, p := range c.Ports {
		if p.Name == "metrics" {
			port = p.ContainerPort
		}
	}
	if port != want || (port >= 9100 && port <= 9999) {
		bad("metrics port %d, want %d (outside the exporters' 9100-9999)", port, want)
	}
	arg := "--metrics-address=$(HOST_IP):" + strconv.Itoa(int(want))
	if !slices.Contains(c.Args, arg) {
		bad("args %v lack %s", c.Args, arg)
	}
	hostIP := false
	for _, e := range c.Env {
		hostIP = hostIP || (e.Name == "HOST_IP" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "status.hostIP")
	}
	if !hostIP {
		bad("no HOST_IP from status.hostIP")
	}
	for _, pr := range []struct {
		what, path string
		p          *corev1.Probe
	}{{"readiness", "/healthz", c.ReadinessProbe}, {"liveness", "/livez", c.LivenessProbe}} {
		if p := pr.p; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != pr.path || p.HTTPGet.Port.String() != "metrics" || p.HTTPGet.Host != "" {
			bad("%s probe %+v: want GET %s on the port named metrics, at the pod's (the node's) address", pr.what, p, pr.path)
		}
	}
	return out
}

// TestImagesAreVersioned: no :latest (kubelet pulls it at every start) and no
// pull at every start either.
func TestImagesAreVersioned(t *testing.T) {
	tag := regexp.MustCompile(`^v\d+\.\d+\.\d+$`)
	for _, d := range load(t) {
		if o, ok := d.obj.(*kustomization); ok {
			for _, im := range o.Images {
				if !tag.MatchString(im.NewTag) {
					t.Errorf("%s: image %s newTag %q, want a release tag such as v0.1.0", d.file, im.Name, im.NewTag)
				}
			}
		}
	}
	// Every directory with a workload names its images' tags in its kustomization.
	tagged := map[string]map[string]bool{}
	for _, d := range load(t) {
		if k, ok := d.obj.(*kustomization); ok {
			for _, im := range k.Images {
				if tagged[filepath.Dir(d.file)] == nil {
					tagged[filepath.Dir(d.file)] = map[string]bool{}
				}
				tagged[filepath.Dir(d.file)][im.Name] = true
			}
		}
	}
	for _, w := range workloads(load(t)) {
		for _, c := range append(append([]corev1.Container(nil), w.spec.InitContainers...), w.spec.Containers...) {
			if !tagged[filepath.Dir(w.file)][c.Image] && !tagged["."][c.Image] {
				t.Errorf("%s %s container %s: image %q gets no tag from a kustomization", w.kind, w.name, c.Name, c.Image)
			}
			if strings.HasSuffix(c.Image, ":latest") || c.ImagePullPolicy != corev1.PullIfNotPresent {
				t.Errorf("%s %s container %s: image %q, pull policy %q; want a tag set by kustomize and IfNotPresent", w.kind, w.name, c.Name, c.Image, c.ImagePullPolicy)
			}
		}
	}
}

// TestBenchNeedsNoHandEdits: the test pods and the benchmark name no node and
// no address; they land on two different nodes, and the client finds the
// server through the Service the server pod answers on.
func TestBenchNeedsNoHandEdits(t *testing.T) {
	var svc *corev1.Service
	var server *corev1.Pod
	var job *batchv1.Job
	for _, d := range load(t) {
		if filepath.Dir(d.file) != "test" {
			continue
		}
		switch o := d.obj.(type) {
		case *corev1.Service:
			svc = o
		case *corev1.Pod:
			if o.Labels["app.kubernetes.io/component"] == "bench-server" {
				server = o
			}
		case *batchv1.Job:
			job = o
		}
	}
	for _, w := range workloads(load(t)) {
		if filepath.Dir(w.file) != "test" {
			continue
		}
		if w.spec.NodeName != "" {
			t.Errorf("%s %s: nodeName %q", w.kind, w.name, w.spec.NodeName)
		}
		a := w.spec.Affinity
		if a == nil || a.PodAntiAffinity == nil || len(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) == 0 ||
			a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution[0].TopologyKey != "kubernetes.io/hostname" {
			t.Errorf("%s %s: no required anti-affinity per node", w.kind, w.name)
		}
		for _, c := range w.spec.Containers {
			for _, e := range c.Env {
				if regexp.MustCompile(`\d+\.\d+\.\d+\.\d+`).MatchString(e.Value) {
					t.Errorf("%s %s: env %s=%s is an address to type", w.kind, w.name, e.Name, e.Value)
				}
			}
		}
	}
	if svc == nil || server == nil || job == nil {
		t.Fatalf("deployments/test: Service %v, server pod %v, Job %v", svc != nil, server != nil, job != nil)
	}
	for k, v := range svc.Spec.Selector {
		if server.Labels[k] != v {
			t.Errorf("Service %s selects %s=%s, which the server pod lacks", svc.Name, k, v)
		}
	}
	url := "http://" + svc.Name + ":" + strconv.Itoa(int(svc.Spec.Ports[0].Port)) + "/address"
	if !strings.Contains(strings.Join(job.Spec.Template.Spec.Containers[0].Args, " "), "--server-from "+url) {
		t.Errorf("the Job does not ask %s", url)
	}
	if !strings.Contains(strings.Join(server.Spec.Containers[0].Command, " "), "--announce :"+svc.Spec.Ports[0].TargetPort.String()) &&
		!strings.Contains(strings.Join(server.Spec.Containers[0].Command, " "), "--announce :"+strconv.Itoa(int(svc.Spec.Ports[0].Port))) {
		t.Errorf("the server pod does not announce on the Service's port: %v", server.Spec.Containers[0].Command)
	}
}

// clusterWideIPAM are IPAM plugins whose leases are the cluster's, not a node's.
var clusterWideIPAM = map[string]bool{"whereabouts": true}

// ipamType is the "ipam" "type" of a NAD's config.
func ipamType(t *testing.T, config string) string {
	var c struct {
		IPAM struct {
			Type string `json:"type"`
		} `json:"ipam"`
	}
	if err := json.Unmarshal([]byte(config), &c); err != nil {
		t.Fatalf("NAD config: %v", err)
	}
	return c.IPAM.Type
}

// TestComponents builds an overlay of deployments/ with each component (and the
// DRA driver's), as
// docs/install.md tells, and checks what it changes.
func TestComponents(t *testing.T) {
	build := kustomizeCommand(t)
	rendered := func(t *testing.T, components ...string) []doc {
		dir := t.TempDir()
		rel := func(p string) string {
			abs, _ := filepath.Abs(p)
			r, err := filepath.Rel(dir, abs)
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - " + rel(".") + "\ncomponents:\n"
		for _, c := range components {
			k += "  - " + rel(c) + "\n"
		}
		if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(build[0], append(build[1:], dir)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(cmd.Args, " "), err, out)
		}
		return decode(t, "overlay", out)
	}
	t.Run("plain-label", func(t *testing.T) {
		var n int
		for _, d := range rendered(t, "components/plain-label") {
			if ds, ok := d.obj.(*appsv1.DaemonSet); ok {
				n++
				for _, p := range checkOperable(ds, "chelsio.com/sriov") {
					t.Error(p)
				}
				if _, ok := ds.Spec.Template.Spec.NodeSelector[nfdLabel]; ok {
					t.Errorf("%s still selects %s", ds.Name, nfdLabel)
				}
			}
		}
		if n != 3 {
			t.Errorf("%d DaemonSets", n)
		}
	})
	t.Run("dra", func(t *testing.T) {
		var dra *appsv1.DaemonSet
		for _, d := range rendered(t, "dra") {
			if ds, ok := d.obj.(*appsv1.DaemonSet); ok && ds.Name == "chelsio-sriov-dra" {
				dra = ds
			}
		}
		if dra == nil {
			t.Fatal("no chelsio-sriov-dra DaemonSet built")
		}
		if dra.Namespace != "chelsio-sriov" || !strings.HasSuffix(dra.Spec.Template.Spec.Containers[0].Image, ":v0.1.0") {
			t.Errorf("DRA DaemonSet in %q with image %q: want the base's namespace and tag", dra.Namespace, dra.Spec.Template.Spec.Containers[0].Image)
		}
		for _, p := range append(checkOperable(dra, nfdLabel), checkPrivilege(workload{"overlay", "DaemonSet", dra.Name, dra.Spec.Template.Spec})...) {
			t.Error(p)
		}
	})
	t.Run("podmonitor and nfd-rule", func(t *testing.T) {
		var pm *podMonitor
		var rule *nodeFeatureRule
		metricsPods := map[string]bool{}
		for _, d := range rendered(t, "components/podmonitor", "components/nfd-rule") {
			switch o := d.obj.(type) {
			case *podMonitor:
				pm = o
			case *nodeFeatureRule:
				rule = o
			case *appsv1.DaemonSet:
				for _, c := range o.Spec.Template.Spec.Containers {
					for _, p := range c.Ports {
						if p.Name == "metrics" {
							metricsPods[o.Name] = true
						}
					}
				}
			}
		}
		if pm == nil || rule == nil {
			t.Fatalf("PodMonitor %v, NodeFeatureRule %v", pm != nil, rule != nil)
		}
		if pm.Namespace != "chelsio-sriov" || pm.Spec.Selector.MatchLabels["app.kubernetes.io/part-of"] != "chelsio-sriov" ||
			len(pm.Spec.PodMetricsEndpoints) != 1 || pm.Spec.PodMetricsEndpoints[0].Port != "metrics" {
			t.Errorf("PodMonitor %+v: want the chelsio-sriov pods' port metrics, in their namespace", pm)
		}
		if len(metricsPods) != len(metricsPorts) {
			t.Errorf("pods with a metrics port: %v, want %v", metricsPods, metricsPorts)
		}
		r := rule.Spec.Rules[0]
		m := r.MatchFeatures[0].MatchExpressions
		if r.Labels["pci-0200_1425.present"] != "true" || r.MatchFeatures[0].Feature != "pci.device" ||
			!slices.Contains(m["vendor"].Value, "1425") || !slices.Contains(m["class"].Value, "0200") {
			t.Errorf("NodeFeatureRule %+v does not give Chelsio Ethernet nodes %s", rule.Spec, nfdLabel)
		}
	})
}
