package kubelettest

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"sigs.k8s.io/yaml"
)

// SeedConfig returns data["config.json"] of the reference deployment's ConfigMap
// (pkg/deviceplugin/testdata/seed-configmap.yaml), verbatim.
func SeedConfig(tb testing.TB) []byte {
	tb.Helper()
	_, here, _, _ := runtime.Caller(0)
	raw, err := os.ReadFile(filepath.Join(filepath.Dir(here), "..", "..", "pkg", "deviceplugin", "testdata", "seed-configmap.yaml"))
	if err != nil {
		tb.Fatal(err)
	}
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(raw, &cm); err != nil {
		tb.Fatalf("decode the seed ConfigMap: %v", err)
	}
	js, ok := cm.Data["config.json"]
	if !ok {
		tb.Fatal("the seed ConfigMap has no config.json")
	}
	return []byte(js)
}
