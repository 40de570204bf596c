package deployments_test

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cni"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/deviceplugin"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/node"
)

// networkAttachment is the NetworkAttachmentDefinition CRD's shape.
type networkAttachment struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Config string `json:"config"`
	} `json:"spec"`
}

// kustomization is the part of kustomize's file these manifests use.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	} `json:"images"`
	Components []string `json:"components"`
	Patches    []struct {
		Target struct {
			Kind          string `json:"kind"`
			LabelSelector string `json:"labelSelector"`
		} `json:"target"`
		Patch string `json:"patch"`
	} `json:"patches"`
}

type doc struct {
	file string
	obj  any
}

// load decodes every document of every manifest strictly: unknown fields fail.
func load(t *testing.T) []doc {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".yaml") {
			files = append(files, p)
		}
		return err
	})
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	var out []doc
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, decode(t, f, b)...)
	}
	return out
}

// decode decodes the documents of one YAML stream strictly; file labels them.
func decode(t *testing.T, file string, b []byte) []doc {
	t.Helper()
	var out []doc
	for i, part := range bytes.Split(b, []byte("\n---\n")) {
		if len(bytes.TrimSpace(part)) == 0 {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(part, &tm); err != nil {
			t.Fatalf("%s document %d: %v", file, i, err)
		}
		var obj any
		switch tm.Kind {
		case "Namespace":
			obj = &corev1.Namespace{}
		case "ServiceAccount":
			obj = &corev1.ServiceAccount{}
		case "ConfigMap":
			obj = &corev1.ConfigMap{}
		case "Pod":
			obj = &corev1.Pod{}
		case "DaemonSet":
			obj = &appsv1.DaemonSet{}
		case "Job":
			obj = &batchv1.Job{}
		case "NetworkAttachmentDefinition":
			obj = &networkAttachment{}
		case "Kustomization", "Component":
			obj = &kustomization{}
		case "Service":
			obj = &corev1.Service{}
		case "PodMonitor":
			obj = &podMonitor{}
		case "NodeFeatureRule":
			obj = &nodeFeatureRule{}
		default:
			if obj = moreKinds(tm.Kind); obj == nil {
				t.Fatalf("%s document %d: unexpected kind %q: teach this test its pod spec", file, i, tm.Kind)
			}
		}
		if err := yaml.UnmarshalStrict(part, obj); err != nil {
			t.Fatalf("%s document %d (%s): %v", file, i, tm.Kind, err)
		}
		out = append(out, doc{file: file, obj: obj})
	}
	return out
}

func TestManifestsDecodeStrictly(t *testing.T) {
	docs := load(t)
	kinds := map[string]int{}
	for _, d := range docs {
		kinds[fmt.Sprintf("%T", d.obj)]++
	}
	for _, want := range []string{"*v1.Namespace", "*v1.ServiceAccount", "*v1.ConfigMap", "*v1.DaemonSet", "*v1.Pod", "*deployments_test.networkAttachment", "*deployments_test.kustomization"} {
		if kinds[want] == 0 {
			t.Errorf("no %s among the manifests (have %v)", want, kinds)
		}
	}
	// Every file a kustomization lists exists, and every manifest is listed.
	listed := map[string]bool{}
	for _, d := range docs {
		if k, ok := d.obj.(*kustomization); ok {
			for _, r := range k.Resources {
				p := filepath.Join(filepath.Dir(d.file), r)
				if _, err := os.Stat(p); err != nil {
					t.Errorf("%s lists %s: %v", d.file, r, err)
				}
				listed[p] = true
			}
		}
	}
	for _, d := range docs {
		if _, ok := d.obj.(*kustomization); !ok && !listed[d.file] {
			t.Errorf("%s is in no kustomization.yaml", d.file)
		}
	}
}

func TestConfigsLoadWithThePluginsLoaders(t *testing.T) {
	var nads, cms int
	for _, d := range load(t) {
		switch o := d.obj.(type) {
		case *networkAttachment:
			nads++
			c, err := cni.Load([]byte(o.Spec.Config), "")
			if err != nil {
				t.Errorf("%s: NAD config: %v", d.file, err)
				continue
			}
			if c.Type != "chelsio-sriov" {
				t.Errorf("%s: NAD type %q", d.file, c.Type)
			}
			res := o.Annotations["k8s.v1.cni.cncf.io/resourceName"]
			if res != "chelsio.com/chelsio_sriov_netdevice" {
				t.Errorf("%s: resourceName annotation %q", d.file, res)
			}
		case *corev1.ConfigMap:
			if pol, ok := o.Data["policy.yaml"]; ok {
				checkPolicyConfigMap(t, d.file, pol)
				continue
			}
			cms++
			cfg, err := deviceplugin.Parse([]byte(o.Data["config.json"]), deviceplugin.DefaultResourcePrefix)
			if err != nil {
				t.Errorf("%s: config.json: %v", d.file, err)
				continue
			}
			var names []string
			for _, p := range cfg.Pools {
				names = append(names, p.FullName())
			}
			if !slices.Contains(names, "chelsio.com/chelsio_sriov_netdevice") {
				t.Errorf("%s: pools %v", d.file, names)
			}
		case *corev1.Pod:
			for _, c := range o.Spec.Containers {
				q := c.Resources.Limits["chelsio.com/chelsio_sriov_netdevice"]
				if q.String() != "1" && len(c.Resources.Claims) != 1 { // the VF from a DRA claim (dra_test.go)
					t.Errorf("%s: pod %s container %s does not request one chelsio.com/chelsio_sriov_netdevice", d.file, o.Name, c.Name)
				}
			}
			if o.Annotations["k8s.v1.cni.cncf.io/networks"] != "sriov-net1" {
				t.Errorf("%s: pod %s is not on sriov-net1", d.file, o.Name)
			}
		}
	}
	if nads == 0 || cms == 0 {
		t.Fatalf("found %d NADs and %d ConfigMaps", nads, cms)
	}
}

// checkPolicyConfigMap loads the node policy of the ConfigMap with the agent's own
// loader and checks that it is the documented example.
func checkPolicyConfigMap(t *testing.T, file, data string) {
	t.Helper()
	p, err := node.LoadPolicy([]byte(data))
	if err != nil {
		t.Errorf("%s: policy.yaml: %v", file, err)
		return
	}
	if len(p.Adapters) != 1 || p.Adapters[0].Model != "T62100-CR" || len(p.Adapters[0].PFs) != 4 {
		t.Fatalf("%s: policy %+v, want the T62100-CR example with PF0-PF3", file, p)
	}
	pf0 := p.Adapters[0].PFs[0]
	want := []node.DriverRange{{VFs: "0-5", Driver: "cxgb4vf"}, {VFs: "6-7", Driver: "vfio-pci"}}
	if pf0.PF != 0 || pf0.NumVFs == nil || *pf0.NumVFs != 8 || pf0.MTU != 9000 || !slices.Equal(pf0.Drivers, want) {
		t.Errorf("%s: PF0 %+v, want 8 VFs at MTU 9000, VFs 0-5 on cxgb4vf and 6-7 on vfio-pci", file, pf0)
	}
}

// TestPolicyAgentReadsItsConfigMap: the policy agent's --file is the policy.yaml of
// the ConfigMap that the manifest mounts, as a directory (not a subPath, which
// would never see edits).
func TestPolicyAgentReadsItsConfigMap(t *testing.T) {
	docs := load(t)
	var agent *appsv1.DaemonSet
	cms := map[string]*corev1.ConfigMap{}
	for _, d := range docs {
		switch o := d.obj.(type) {
		case *appsv1.DaemonSet:
			if o.Name == "chelsio-vf-policy" {
				agent = o
			}
		case *corev1.ConfigMap:
			cms[o.Name] = o
		}
	}
	if agent == nil {
		t.Fatal("no chelsio-vf-policy DaemonSet")
	}
	spec := agent.Spec.Template.Spec
	c := spec.Containers[0]
	if len(c.Args) == 0 || c.Args[0] != "policy" {
		t.Fatalf("container %s runs %v %v, want chelsio-vf policy", c.Name, c.Command, c.Args)
	}
	file := ""
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--file="); ok {
			file = v
		}
	}
	found := false
	for _, m := range c.VolumeMounts {
		for _, v := range spec.Volumes {
			if v.Name != m.Name || v.ConfigMap == nil {
				continue
			}
			cm := cms[v.ConfigMap.Name]
			if cm == nil {
				t.Errorf("volume %s: no ConfigMap %s among the manifests", v.Name, v.ConfigMap.Name)
				continue
			}
			if m.SubPath != "" {
				t.Errorf("ConfigMap %s mounted with subPath %s: edits would never reach the agent", cm.Name, m.SubPath)
			}
			if _, ok := cm.Data[filepath.Base(file)]; ok && filepath.Join(m.MountPath, filepath.Base(file)) == file {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("--file=%s is not a key of a ConfigMap mounted at %s", file, filepath.Dir(file))
	}
}

// The exceptions to least privilege, each with its reason. Anything else fails
// TestLeastPrivilege: a new exception needs its reason here and a comment on its
// line in the manifest.
var (
	// hostNetworkOK: workload → why it needs the host's network namespace.
	hostNetworkOK = map[string]string{
		"chelsio-sriov-dp": "a port's link state comes from netlink link events, which a network namespace " +
			"sends only for its own interfaces (pkg/deviceplugin/links.go); the ports are in the host's",
		"chelsio-vf-policy": "the MTUs of the ports and VF netdevs are set through netlink in the namespace " +
			"that holds them, the host's; a new VF is ready once its netdev is there",
	}
	// rootOK: workload/container → why it runs as uid 0 (without any capability).
	rootOK = map[string]string{
		"chelsio-sriov-dp/chelsio-sriov-dp": "kubelet's device-plugin directory and kubelet.sock are root's: " +
			"its sockets are created there and kubelet's is connected to",
		"chelsio-sriov-cni/install-cni": "the node's /opt/cni/bin is root's: the plugin binary is written there",
		"chelsio-vf-policy/policy": "the sysfs files it writes (sriov_numvfs, driver_override, bind, unbind) are root's; " +
			"as their owner it needs no CAP_DAC_OVERRIDE",
	}
	// capsOK: workload/container → capability → why it is added.
	capsOK = map[string]map[string]string{
		"chelsio-vf-policy/policy": {
			"NET_ADMIN": "netlink RTM_SETLINK sets the MTUs of the ports and VF netdevs (docs/node-policy.md)",
		},
	}
	// privilegedOK: workload/container → why it runs privileged. None does.
	privilegedOK = map[string]string{}
	// hostPathsOK: host path → workload that may mount it → "" for read-only, or
	// why it is mounted read-write.
	hostPathsOK = map[string]map[string]string{
		"/sys": {
			"chelsio-sriov-dp":  "",
			"chelsio-vf-policy": "the policy writes sriov_numvfs and the driver binding files (driver_override, unbind, bind)",
		},
		"/var/lib/cni":                        {"chelsio-vf-policy": ""},
		"/run/chelsio-sriov":                  {"chelsio-vf-policy": "the agent's status file, which chelsio-vf doctor reads"},
		"/var/lib/kubelet/device-plugins":     {"chelsio-sriov-dp": "its sockets, one per resource"},
		"/var/run/k8s.cni.cncf.io/devinfo/dp": {"chelsio-sriov-dp": "Allocate writes a Multus device-info file per VF"},
		// Read only: the CNI state tells a VF in a pod from a stranded one, and
		// kubelet's pod-resources socket which devices pods hold (device-info files;
		// the pods the policy must not take VFs from).
		"/var/lib/cni/chelsio-sriov":     {"chelsio-sriov-dp": ""},
		"/var/lib/kubelet/pod-resources": {"chelsio-sriov-dp": "", "chelsio-vf-policy": ""},
		"/opt/cni/bin":                   {"chelsio-sriov-cni": "the CNI plugin binary is installed there"},
	}
)

// workload is one pod template of the manifests.
type workload struct {
	file, kind, name string
	spec             corev1.PodSpec
}

func workloads(docs []doc) []workload {
	var out []workload
	for _, d := range docs {
		switch o := d.obj.(type) {
		case *appsv1.DaemonSet:
			out = append(out, workload{d.file, "DaemonSet", o.Name, o.Spec.Template.Spec})
		case *batchv1.Job:
			out = append(out, workload{d.file, "Job", o.Name, o.Spec.Template.Spec})
		case *corev1.Pod:
			out = append(out, workload{d.file, "Pod", o.Name, o.Spec})
		}
	}
	return out
}

// checkPrivilege returns every way in which w exceeds least privilege: for every
// container (init containers too) a securityContext with privileged false,
// allowPrivilegeEscalation false, a read-only root file system, every capability
// dropped and none added but those of capsOK, a non-root uid unless rootOK, the
// runtime's default seccomp profile; no host network but for hostNetworkOK, no host
// PID or IPC namespace, no host port, no service account token; host paths only
// from hostPathsOK, with a type, read-only unless a reason says otherwise, without
// mount propagation; a memory limit.
func checkPrivilege(w workload) []string {
	var problems []string
	bad := func(format string, args ...any) {
		problems = append(problems, fmt.Sprintf("%s %s %s: ", w.file, w.kind, w.name)+fmt.Sprintf(format, args...))
	}
	spec := w.spec
	if _, ok := hostNetworkOK[w.name]; spec.HostNetwork != ok {
		bad("hostNetwork %v, want %v (hostNetworkOK)", spec.HostNetwork, ok)
	}
	if spec.HostPID || spec.HostIPC {
		bad("host PID or IPC namespace")
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		bad("mounts a service account token it does not use")
	}
	writable := map[string]string{} // volume → why it may be mounted read-write
	hostPathVols := map[string]bool{}
	for _, v := range spec.Volumes {
		if v.HostPath == nil {
			continue
		}
		hostPathVols[v.Name] = true
		why, ok := hostPathsOK[v.HostPath.Path][w.name]
		if !ok {
			bad("host path %s is not in hostPathsOK for it", v.HostPath.Path)
		}
		writable[v.Name] = why
		if v.HostPath.Type == nil || *v.HostPath.Type == corev1.HostPathUnset {
			bad("host path %s has no type: say Directory or DirectoryOrCreate", v.HostPath.Path)
		}
	}
	psc := spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	for _, c := range append(append([]corev1.Container(nil), spec.InitContainers...), spec.Containers...) {
		key := w.name + "/" + c.Name
		sc := c.SecurityContext
		if sc == nil {
			bad("container %s: no securityContext", c.Name)
			continue
		}
		if _, ok := privilegedOK[key]; sc.Privileged == nil || *sc.Privileged != ok {
			bad("container %s: privileged %s, want %v (privilegedOK)", c.Name, boolString(sc.Privileged), ok)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			bad("container %s: allowPrivilegeEscalation %s, want false", c.Name, boolString(sc.AllowPrivilegeEscalation))
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			bad("container %s: readOnlyRootFilesystem %s, want true", c.Name, boolString(sc.ReadOnlyRootFilesystem))
		}
		if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
			bad("container %s: capabilities %+v, want drop [ALL]", c.Name, sc.Capabilities)
		} else {
			for _, added := range sc.Capabilities.Add {
				if _, ok := capsOK[key][strings.TrimPrefix(string(added), "CAP_")]; !ok {
					bad("container %s: adds capability %s, which capsOK does not give it", c.Name, added)
				}
			}
		}
		uid, nonRoot := sc.RunAsUser, sc.RunAsNonRoot
		if uid == nil {
			uid = psc.RunAsUser
		}
		if nonRoot == nil {
			nonRoot = psc.RunAsNonRoot
		}
		if _, ok := rootOK[key]; ok {
			if uid == nil || *uid != 0 {
				bad("container %s: in rootOK but runAsUser is not 0: remove it from rootOK", c.Name)
			}
		} else if nonRoot == nil || !*nonRoot || uid == nil || *uid == 0 {
			bad("container %s: want runAsNonRoot true and a non-zero runAsUser, or a reason in rootOK", c.Name)
		}
		seccomp := sc.SeccompProfile
		if seccomp == nil {
			seccomp = psc.SeccompProfile
		}
		if seccomp == nil || (seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault && seccomp.Type != corev1.SeccompProfileTypeLocalhost) {
			bad("container %s: seccompProfile %+v, want RuntimeDefault", c.Name, seccomp)
		}
		for _, p := range c.Ports {
			if p.HostPort != 0 {
				bad("container %s: host port %d", c.Name, p.HostPort)
			}
		}
		for _, m := range c.VolumeMounts {
			if !hostPathVols[m.Name] {
				continue
			}
			if writable[m.Name] == "" && !m.ReadOnly {
				bad("container %s: host path mounted read-write at %s: mount it readOnly, or give the reason in hostPathsOK", c.Name, m.MountPath)
			}
			if m.MountPropagation != nil && *m.MountPropagation != corev1.MountPropagationNone {
				bad("container %s: mount propagation %s at %s", c.Name, *m.MountPropagation, m.MountPath)
			}
		}
		if c.Resources.Limits.Memory().IsZero() {
			bad("container %s: no memory limit", c.Name)
		}
	}
	return problems
}

func boolString(b *bool) string {
	if b == nil {
		return "unset"
	}
	return fmt.Sprint(*b)
}

// TestLeastPrivilege checks every container of every workload of the manifests
// with checkPrivilege, and that each exception is explained in the manifest: a
// comment on the line (or just above it) of hostNetwork: true, runAsUser: 0,
// privileged: true, each added capability and each read-write host path mount.
func TestLeastPrivilege(t *testing.T) {
	ws := workloads(load(t))
	var daemonSets []string
	for _, w := range ws {
		if w.kind == "DaemonSet" {
			daemonSets = append(daemonSets, w.name)
		}
		for _, p := range checkPrivilege(w) {
			t.Error(p)
		}
	}
	slices.Sort(daemonSets)
	if want := []string{"chelsio-sriov-cni", "chelsio-sriov-dp", "chelsio-sriov-dra", "chelsio-vf-policy"}; !slices.Equal(daemonSets, want) || len(ws) < 6 {
		t.Errorf("%d workloads, DaemonSets %v: want the DaemonSets %v, the test pods and the benchmark Job", len(ws), daemonSets, want)
	}
	for _, w := range ws {
		b, err := os.ReadFile(w.file)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		need := []string{`hostNetwork:\s*true`, `runAsUser:\s*0\b`, `privileged:\s*true`}
		for _, c := range w.spec.Containers {
			if c.SecurityContext != nil && c.SecurityContext.Capabilities != nil {
				for _, added := range c.SecurityContext.Capabilities.Add {
					need = append(need, `-\s*"?`+regexp.QuoteMeta(string(added))+`"?`)
				}
			}
			for _, m := range c.VolumeMounts {
				if !m.ReadOnly {
					for _, v := range w.spec.Volumes {
						if v.Name == m.Name && v.HostPath != nil {
							need = append(need, `mountPath:\s*`+regexp.QuoteMeta(m.MountPath)+`\b`)
						}
					}
				}
			}
		}
		for _, re := range need {
			if line, ok := uncommented(text, re); !ok {
				t.Errorf("%s: %q has no comment that says why (on its line or the line above)", w.file, line)
			}
		}
	}
}

// uncommented finds a line of the YAML text that matches re, as a value and not
// inside a comment, and has no comment on it or on the line above it.
func uncommented(text, re string) (string, bool) {
	match := regexp.MustCompile(`^\s*(-\s*)?` + re)
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if !match.MatchString(l) {
			continue
		}
		if strings.Contains(l, " #") {
			continue
		}
		if i > 0 && strings.HasPrefix(strings.TrimSpace(lines[i-1]), "#") {
			continue
		}
		return strings.TrimSpace(l), false
	}
	return "", true
}

// TestCheckPrivilegeFindsRegressions shows that checkPrivilege fails each
// regression of a manifest's pod spec.
func TestCheckPrivilegeFindsRegressions(t *testing.T) {
	var dp workload
	for _, w := range workloads(load(t)) {
		if w.name == "chelsio-sriov-dp" {
			dp = w
		}
	}
	if dp.name == "" {
		t.Fatal("no chelsio-sriov-dp DaemonSet")
	}
	if p := checkPrivilege(dp); len(p) > 0 {
		t.Fatalf("the device plugin as deployed: %v", p)
	}
	yes, no, root := true, false, int64(0)
	tests := []struct {
		name   string
		change func(*corev1.PodSpec, *corev1.SecurityContext)
		want   string
	}{
		{"privileged", func(_ *corev1.PodSpec, sc *corev1.SecurityContext) { sc.Privileged = &yes }, "privileged true"},
		{"privileged unset", func(_ *corev1.PodSpec, sc *corev1.SecurityContext) { sc.Privileged = nil }, "privileged unset"},
		{"privilege escalation", func(_ *corev1.PodSpec, sc *corev1.SecurityContext) { sc.AllowPrivilegeEscalation = &yes }, "allowPrivilegeEscalation true"},
		{"writable root", func(_ *corev1.PodSpec, sc *corev1.SecurityContext) { sc.ReadOnlyRootFilesystem = &no }, "readOnlyRootFilesystem false"},
		{"capability added", func(_ *corev1.PodSpec, sc *corev1.SecurityContext) {
			sc.Capabilities.Add = []corev1.Capability{"NET_ADMIN"}
		}, "adds capability NET_ADMIN"},
		{"capabilities kept", func(_ *corev1.PodSpec, sc *corev1.SecurityContext) { sc.Capabilities.Drop = nil }, "want drop [ALL]"},
		{"no seccomp", func(_ *corev1.PodSpec, sc *corev1.SecurityContext) { sc.SeccompProfile = nil }, "seccompProfile"},
		{"host PID", func(s *corev1.PodSpec, _ *corev1.SecurityContext) { s.HostPID = true }, "host PID"},
		{"no host network", func(s *corev1.PodSpec, _ *corev1.SecurityContext) { s.HostNetwork = false }, "hostNetwork false, want true"},
		{"sysfs writable", func(s *corev1.PodSpec, _ *corev1.SecurityContext) {
			for i := range s.Containers[0].VolumeMounts {
				if s.Containers[0].VolumeMounts[i].MountPath == "/sys" {
					s.Containers[0].VolumeMounts[i].ReadOnly = false
				}
			}
		}, "host path mounted read-write at /sys"},
		{"another host path", func(s *corev1.PodSpec, _ *corev1.SecurityContext) {
			s.Volumes = append(s.Volumes, corev1.Volume{Name: "etc", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/etc"}}})
		}, "host path /etc is not in hostPathsOK"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := dp
			w.spec = *dp.spec.DeepCopy()
			tt.change(&w.spec, w.spec.Containers[0].SecurityContext)
			got := strings.Join(checkPrivilege(w), "\n")
			if !strings.Contains(got, tt.want) {
				t.Errorf("checkPrivilege() = %q, want a problem with %q", got, tt.want)
			}
		})
	}
	// The policy agent's exceptions are its own: no other capability, no other
	// writable host path, and none of them for another workload.
	var agent workload
	for _, w := range workloads(load(t)) {
		if w.name == "chelsio-vf-policy" {
			agent = w
		}
	}
	if p := checkPrivilege(agent); agent.name == "" || len(p) > 0 {
		t.Fatalf("the policy agent as deployed (%q): %v", agent.name, p)
	}
	for _, tt := range []struct {
		name   string
		change func(*workload)
		want   string
	}{
		{"another capability", func(w *workload) {
			sc := w.spec.Containers[0].SecurityContext
			sc.Capabilities.Add = append(sc.Capabilities.Add, "SYS_ADMIN")
		}, "adds capability SYS_ADMIN"},
		{"privileged", func(w *workload) { w.spec.Containers[0].SecurityContext.Privileged = &yes }, "privileged true"},
		{"CNI state writable", func(w *workload) {
			for i, m := range w.spec.Containers[0].VolumeMounts {
				if m.MountPath == "/var/lib/cni" {
					w.spec.Containers[0].VolumeMounts[i].ReadOnly = false
				}
			}
		}, "host path mounted read-write at /var/lib/cni"},
		{"host PID", func(w *workload) { w.spec.HostPID = true }, "host PID"},
		{"its exceptions under another name", func(w *workload) { w.name = "another-agent" }, "adds capability NET_ADMIN"},
	} {
		t.Run("policy agent/"+tt.name, func(t *testing.T) {
			w := agent
			w.spec = *agent.spec.DeepCopy()
			tt.change(&w)
			if got := strings.Join(checkPrivilege(w), "\n"); !strings.Contains(got, tt.want) {
				t.Errorf("checkPrivilege() = %q, want a problem with %q", got, tt.want)
			}
		})
	}
	// A container that is not in rootOK must not run as root.
	pod := workload{file: "x.yaml", kind: "Pod", name: "x", spec: *dp.spec.DeepCopy()}
	pod.spec.HostNetwork = false
	pod.spec.Volumes = nil
	pod.spec.Containers[0].VolumeMounts = nil
	pod.spec.Containers[0].SecurityContext.RunAsUser = &root
	if got := strings.Join(checkPrivilege(pod), "\n"); !strings.Contains(got, "want runAsNonRoot true") {
		t.Errorf("checkPrivilege() of a root container outside rootOK = %q", got)
	}
	// An added capability without a comment in the manifest.
	if line, ok := uncommented("    add:\n      - NET_ADMIN\n", `-\s*"?NET_ADMIN"?`); ok || line != "- NET_ADMIN" {
		t.Errorf("uncommented() = %q, %v; want the capability's line", line, ok)
	}
	if _, ok := uncommented("    add:\n      - NET_ADMIN # moves VF netdevs\n", `-\s*"?NET_ADMIN"?`); !ok {
		t.Error("uncommented() refuses a commented capability")
	}
}

// kustomizeCommand is what builds a kustomization: kustomize build, or kubectl
// kustomize. Without either the test skips, but not in CI.
func kustomizeCommand(t *testing.T) []string {
	t.Helper()
	if p, err := exec.LookPath("kustomize"); err == nil {
		return []string{p, "build"}
	}
	if p, err := exec.LookPath("kubectl"); err == nil {
		return []string{p, "kustomize"}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("neither kustomize nor kubectl on PATH")
	}
	t.Skip("neither kustomize nor kubectl on PATH")
	return nil
}

// TestKustomizeBuild builds both kustomizations, as kubectl apply -k does, and
// checks what would reach the cluster: every object in the chelsio-sriov namespace,
// the images renamed, and every workload as least-privileged as its source.
func TestKustomizeBuild(t *testing.T) {
	build := kustomizeCommand(t)
	for _, dir := range []string{".", "test"} {
		t.Run(dir, func(t *testing.T) {
			var k kustomization
			b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			if err := yaml.UnmarshalStrict(b, &k); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(build[0], append(build[1:], dir)...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("%s: %v: %s", strings.Join(cmd.Args, " "), err, stderr.Bytes())
			}
			docs := decode(t, "kustomize build "+dir, out)
			want := 0
			for _, r := range k.Resources {
				src, err := os.ReadFile(filepath.Join(dir, r))
				if err != nil {
					t.Fatal(err)
				}
				want += len(decode(t, r, src))
			}
			if len(docs) != want {
				t.Errorf("%d objects built, want the %d of %v", len(docs), want, k.Resources)
			}
			images := map[string]string{}
			for _, im := range k.Images {
				images[im.Name] = im.NewName + ":" + im.NewTag
			}
			for _, d := range docs {
				if m, ok := d.obj.(metav1.Object); ok {
					if _, isNS := d.obj.(*corev1.Namespace); !isNS && m.GetNamespace() != k.Namespace {
						t.Errorf("%T %s: namespace %q, want %q", d.obj, m.GetName(), m.GetNamespace(), k.Namespace)
					}
				}
			}
			for _, d := range docs {
				if nad, ok := d.obj.(*networkAttachment); ok && !clusterWideIPAM[ipamType(t, nad.Spec.Config)] {
					t.Errorf("NAD %s: IPAM %q keeps leases per node: two nodes would give the same address", nad.Name, ipamType(t, nad.Spec.Config))
				}
			}
			ws := workloads(docs)
			for _, w := range ws {
				for _, c := range append(append([]corev1.Container(nil), w.spec.InitContainers...), w.spec.Containers...) {
					if !slices.Contains(slices.Collect(maps.Values(images)), c.Image) {
						t.Errorf("%s %s container %s: image %q, want one of %v", w.kind, w.name, c.Name, c.Image, images)
					}
				}
				for _, p := range checkPrivilege(w) {
					t.Error(p)
				}
			}
			if len(ws) == 0 {
				t.Error("no workload built")
			}
		})
	}
}
