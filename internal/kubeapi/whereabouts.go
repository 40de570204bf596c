package kubeapi

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"
)

// The group and resource of whereabouts' leases, and the namespace it uses when
// the kubeconfig names none, which Whereabouts names too.
const (
	WhereaboutsGroup     = "whereabouts.cni.cncf.io"
	IPPools              = "ippools"
	WhereaboutsNamespace = "kube-system"
)

// WhereaboutsNode is what a node's whereabouts install leaves for the plugin, in
// a directory of its own: a kubeconfig that reaches the cluster, the flat
// configuration file that names it, and the plugin's log.
type WhereaboutsNode struct {
	Kubeconfig string // the kubeconfig
	FlatFile   string // the flat file: the IPAM config's "configuration_path"
	LogFile    string // whereabouts' log_file
}

// Whereabouts writes a WhereaboutsNode under dir for a node whose network
// namespace is at netnsPath: its kubeconfig reaches this server on that
// namespace's loopback.
func (s *Server) Whereabouts(dir, netnsPath string) (WhereaboutsNode, error) {
	url, err := s.ListenIn(netnsPath)
	if err != nil {
		return WhereaboutsNode{}, err
	}
	n := WhereaboutsNode{
		Kubeconfig: filepath.Join(dir, "kubeconfig"),
		FlatFile:   filepath.Join(dir, "whereabouts.conf"),
		LogFile:    filepath.Join(dir, "whereabouts.log"),
	}
	flat, _ := json.Marshal(map[string]any{ // strings always marshal
		"datastore":  "kubernetes",
		"kubernetes": map[string]string{"kubeconfig": n.Kubeconfig},
		"log_file":   n.LogFile,
		"log_level":  "debug",
	})
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return WhereaboutsNode{}, err
	}
	if err := os.WriteFile(n.Kubeconfig, Kubeconfig(url, WhereaboutsNamespace), 0o600); err != nil {
		return WhereaboutsNode{}, err
	}
	if err := os.WriteFile(n.FlatFile, flat, 0o600); err != nil {
		return WhereaboutsNode{}, err
	}
	return n, nil
}

// Allocations returns the allocations of every IPPool, by pool name, then by the
// offset of the address in the pool's range.
func (s *Server) Allocations() map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, p := range s.List(WhereaboutsGroup, IPPools, "") {
		spec, _ := p["spec"].(map[string]any)
		a, _ := spec["allocations"].(map[string]any)
		if a == nil {
			a = map[string]any{}
		}
		out[metaString(p, "name")] = a
	}
	return out
}

// NADConfig reads a NetworkAttachmentDefinition manifest and returns its
// spec.config, the network config Multus hands the plugin.
func NADConfig(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var nad struct {
		Kind string `json:"kind"`
		Spec struct {
			Config string `json:"config"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(b, &nad); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if nad.Kind != "NetworkAttachmentDefinition" || nad.Spec.Config == "" {
		return nil, fmt.Errorf("read %s: not a NetworkAttachmentDefinition with a spec.config", path)
	}
	if !json.Valid([]byte(nad.Spec.Config)) {
		return nil, fmt.Errorf("read %s: spec.config is not JSON", path)
	}
	return []byte(nad.Spec.Config), nil
}
