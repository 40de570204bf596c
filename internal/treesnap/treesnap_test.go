package treesnap_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chelsio-k8s/chelsio-sriov/internal/treesnap"
)

func TestOfSeesEveryChange(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "f"), []byte("one"), 0o600))
	must(os.WriteFile(filepath.Join(dir, "big"), []byte(strings.Repeat("x", 1000)), 0o600))
	must(os.Symlink("f", filepath.Join(dir, "l")))
	before := treesnap.Of(t, dir)
	if len(before) != 4 {
		t.Fatalf("snapshot %v, want the root and three entries", before)
	}
	changes := []func(){
		func() { must(os.WriteFile(filepath.Join(dir, "f"), []byte("two"), 0o600)) },
		func() { must(os.WriteFile(filepath.Join(dir, "big"), []byte(strings.Repeat("x", 999)+"y"), 0o600)) },
		func() { must(os.Chmod(filepath.Join(dir, "f"), 0o644)) },
		func() { must(os.Remove(filepath.Join(dir, "l"))); must(os.Symlink("big", filepath.Join(dir, "l"))) },
		func() { must(os.Mkdir(filepath.Join(dir, "d"), 0o700)) },
	}
	for i, change := range changes {
		prev := treesnap.Of(t, dir)
		change()
		if after := treesnap.Of(t, dir); len(after) == len(prev) && equal(prev, after) {
			t.Errorf("change %d not seen", i)
		}
	}
	if !equal(treesnap.Of(t, dir), treesnap.Of(t, dir)) {
		t.Error("two snapshots of an unchanged tree differ")
	}
}

func equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
