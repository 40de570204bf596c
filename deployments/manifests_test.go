package deployments_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
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
		for i, part := range bytes.Split(b, []byte("\n---\n")) {
			if len(bytes.TrimSpace(part)) == 0 {
				continue
			}
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(part, &tm); err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
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
			case "Kustomization":
				obj = &kustomization{}
			default:
				t.Fatalf("%s document %d: unexpected kind %q", f, i, tm.Kind)
			}
			if err := yaml.UnmarshalStrict(part, obj); err != nil {
				t.Fatalf("%s document %d (%s): %v", f, i, tm.Kind, err)
			}
			out = append(out, doc{file: f, obj: obj})
		}
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
				if q.String() != "1" {
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

// TestLeastPrivilege checks every container: no privileged mode, no privilege
// escalation, every capability dropped and none added, a read-only root file
// system, the default seccomp profile for host-level containers; host networking
// only for the device plugin (it follows the ports' netlink events); host paths
// only where needed, sysfs read-only.
func TestLeastPrivilege(t *testing.T) {
	allowedHostPaths := map[string]bool{"/var/lib/kubelet/device-plugins": true, "/sys": true, "/var/run/k8s.cni.cncf.io/devinfo/dp": true, "/opt/cni/bin": true}
	check := func(file, name string, spec corev1.PodSpec, hostNet bool) {
		if spec.HostNetwork != hostNet {
			t.Errorf("%s %s: hostNetwork %v, want %v", file, name, spec.HostNetwork, hostNet)
		}
		if spec.HostPID || spec.HostIPC {
			t.Errorf("%s %s: host PID or IPC namespace", file, name)
		}
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
			t.Errorf("%s %s: mounts a service account token it does not use", file, name)
		}
		readOnly := map[string]bool{}
		for _, v := range spec.Volumes {
			if v.HostPath != nil && !allowedHostPaths[v.HostPath.Path] {
				t.Errorf("%s %s: host path %s", file, name, v.HostPath.Path)
			}
			if v.HostPath != nil && v.HostPath.Path == "/sys" {
				readOnly[v.Name] = true
			}
		}
		for _, c := range append(append([]corev1.Container(nil), spec.InitContainers...), spec.Containers...) {
			sc := c.SecurityContext
			if sc == nil {
				t.Errorf("%s %s/%s: no securityContext", file, name, c.Name)
				continue
			}
			if sc.Privileged != nil && *sc.Privileged {
				t.Errorf("%s %s/%s: privileged", file, name, c.Name)
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("%s %s/%s: allowPrivilegeEscalation not false", file, name, c.Name)
			}
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("%s %s/%s: root file system not read-only", file, name, c.Name)
			}
			if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
				t.Errorf("%s %s/%s: capabilities %+v, want drop ALL and add none", file, name, c.Name, sc.Capabilities)
			}
			if c.Resources.Limits.Memory().IsZero() {
				t.Errorf("%s %s/%s: no memory limit", file, name, c.Name)
			}
			for _, m := range c.VolumeMounts {
				if readOnly[m.Name] && !m.ReadOnly {
					t.Errorf("%s %s/%s: %s mounted read-write", file, name, c.Name, m.MountPath)
				}
			}
		}
	}
	n := 0
	for _, d := range load(t) {
		switch o := d.obj.(type) {
		case *appsv1.DaemonSet:
			n++
			check(d.file, o.Name, o.Spec.Template.Spec, o.Name == "chelsio-sriov-dp")
		case *batchv1.Job:
			check(d.file, o.Name, o.Spec.Template.Spec, false)
		case *corev1.Pod:
			check(d.file, o.Name, o.Spec, false)
		}
	}
	if n != 2 {
		t.Errorf("%d DaemonSets, want the device plugin's and the CNI installer's", n)
	}
}
