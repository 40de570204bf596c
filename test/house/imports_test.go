package house

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// module is the project's module path.
const module = "github.com/chelsio-k8s/chelsio-sriov/"

// layers says, for every package that ships, which of the project's packages it
// may import (docs/architecture.md draws the same floors). A package that ships and
// is not listed fails the test: place it on a floor first.
var layers = map[string][]string{
	"pkg/sysfs":             nil,
	"pkg/cut":               nil,
	"pkg/safepath":          nil,
	"pkg/uevent":            {"pkg/cut"},
	"pkg/version":           nil,
	"pkg/httpserve":         nil,
	"pkg/podresources":      nil,
	"pkg/servedby":          nil,
	"pkg/vf":                {"pkg/sysfs"},
	"pkg/cnistore":          {"pkg/vf", "pkg/safepath", "pkg/cut"},
	"pkg/cni":               {"pkg/sysfs", "pkg/vf", "pkg/cnistore", "pkg/safepath", "pkg/cut"},
	"pkg/deviceplugin":      {"pkg/sysfs", "pkg/vf", "pkg/cut", "pkg/uevent", "pkg/cnistore", "pkg/podresources", "pkg/servedby", "pkg/httpserve"}, // the CNI state, read only: stranded VFs; kubelet's pod-resources: device-info files; served-by locks: never a VF the DRA driver offers
	"pkg/dra":               {"pkg/deviceplugin", "pkg/servedby", "pkg/sysfs", "pkg/vf"},                                                           // the scanner, uevents and device-info files of the device plugin
	"pkg/emulate":           {"pkg/sysfs", "pkg/vf", "pkg/emulate/sysfstree", "pkg/uevent"},
	"pkg/emulate/sysfstree": {"pkg/sysfs", "pkg/vf"},
	"deployments":           nil,
	"pkg/bench":             nil,
	"pkg/node":              {"pkg/sysfs", "pkg/vf", "pkg/cnistore", "pkg/cut", "pkg/podresources", "pkg/httpserve"},
	"cmd/chelsio-sriov-dp":  {"pkg/deviceplugin", "pkg/httpserve", "pkg/podresources", "pkg/servedby", "pkg/sysfs", "pkg/vf", "pkg/version"},
	"cmd/chelsio-sriov-dra": {"pkg/deviceplugin", "pkg/dra", "pkg/httpserve", "pkg/servedby", "pkg/sysfs", "pkg/vf", "pkg/version"},
	"cmd/chelsio-vf":        {"pkg/bench", "pkg/cni", "pkg/cnistore", "pkg/emulate", "pkg/httpserve", "pkg/node", "pkg/podresources", "pkg/sysfs", "pkg/vf", "pkg/version"},
	"plugins/chelsio-sriov": {"pkg/cni", "pkg/sysfs", "pkg/vf", "pkg/version"},
}

// lean are the binaries that run on every node in the data path's control: they
// carry no test, emulator or plotting code.
var lean = []string{"cmd/chelsio-sriov-dp", "cmd/chelsio-sriov-dra", "plugins/chelsio-sriov"}

// forbiddenInLean says why a dependency has no place in a lean binary, "" if it has.
func forbiddenInLean(dep string) string {
	rel, ours := strings.CutPrefix(dep, module)
	switch {
	case dep == "testing" || strings.HasPrefix(dep, "testing/"):
		return "test code"
	case !ours:
		return ""
	case strings.HasPrefix(rel, "internal/") || strings.HasPrefix(rel, "test/") || strings.HasSuffix(rel, "test"):
		return "test code"
	case rel == "pkg/emulate" || strings.HasPrefix(rel, "pkg/emulate/"):
		return "the emulator"
	case rel == "pkg/bench":
		return "the benchmark and its plots"
	}
	return ""
}

// pkgInfo is what `go list -json` says of a package that this test needs.
type pkgInfo struct {
	ImportPath string
	GoFiles    []string
	Imports    []string
	Deps       []string
}

// graph lists the module's packages with go list; test files are not part of it.
func graph(t *testing.T) map[string]pkgInfo {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", module+"...").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string]pkgInfo{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkgInfo
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs[strings.TrimPrefix(p.ImportPath, module)] = p
	}
	return pkgs
}

// ships reports whether a package of the module is part of what ships: everything
// with code outside tests, but internal/ and test/.
func ships(rel string, p pkgInfo) bool {
	return len(p.GoFiles) > 0 && !strings.HasPrefix(rel, "internal/") && !strings.HasPrefix(rel, "test/")
}

// checkLayers returns one line for each import of the project's packages that the
// layers do not allow, and for each shipped package they do not place.
func checkLayers(pkgs map[string]pkgInfo, layers map[string][]string) []string {
	var bad []string
	for _, rel := range sortedKeys(pkgs) {
		if !ships(rel, pkgs[rel]) {
			continue
		}
		may, placed := layers[rel]
		if !placed {
			bad = append(bad, fmt.Sprintf("%s ships but has no floor in the layers of this test (and docs/architecture.md)", rel))
			continue
		}
		for _, imp := range pkgs[rel].Imports {
			dep, ours := strings.CutPrefix(imp, module)
			if ours && !slices.Contains(may, dep) {
				bad = append(bad, fmt.Sprintf("%s imports %s, which its floor does not allow", rel, dep))
			}
		}
	}
	return bad
}

// checkLean returns one line for each dependency of a lean binary that has no
// place there.
func checkLean(pkgs map[string]pkgInfo, bins []string) []string {
	var bad []string
	for _, b := range bins {
		p, ok := pkgs[b]
		if !ok {
			bad = append(bad, b+" is not in the module")
			continue
		}
		for _, d := range p.Deps {
			if why := forbiddenInLean(d); why != "" {
				bad = append(bad, fmt.Sprintf("%s depends on %s (%s)", b, strings.TrimPrefix(d, module), why))
			}
		}
	}
	return bad
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// TestImportLayers: every shipped package imports only the floors below it, and the
// CNI plugin and the device plugin carry no test, emulator or plotting code.
func TestImportLayers(t *testing.T) {
	pkgs := graph(t)
	for _, p := range checkLayers(pkgs, layers) {
		t.Error(p)
	}
	for _, p := range checkLean(pkgs, lean) {
		t.Error(p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages: the graph is broken", len(pkgs))
	}
}

// TestImportLayersFindForbidden shows that the checks fail for what they forbid: a
// floor importing one above it, a package with no floor, a lean binary that pulls
// in test code, the emulator or the plots.
func TestImportLayersFindForbidden(t *testing.T) {
	m := func(rel string) string { return module + rel }
	go1 := []string{"a.go"}
	pkgs := map[string]pkgInfo{
		"pkg/vf":                {GoFiles: go1, Imports: []string{m("pkg/sysfs"), m("pkg/cni")}},
		"pkg/sysfs":             {GoFiles: go1},
		"pkg/cni":               {GoFiles: go1, Imports: []string{m("pkg/vf"), "fmt"}},
		"pkg/new":               {GoFiles: go1},
		"deployments":           {},
		"internal/kubelettest":  {GoFiles: go1, Imports: []string{m("pkg/cni")}},
		"plugins/chelsio-sriov": {GoFiles: go1, Deps: []string{m("pkg/cni"), m("pkg/emulate"), "testing", m("internal/roottest"), m("pkg/bench"), "fmt"}},
	}
	layers := map[string][]string{
		"pkg/sysfs": nil, "pkg/vf": {"pkg/sysfs"}, "pkg/cni": {"pkg/sysfs", "pkg/vf"},
		"plugins/chelsio-sriov": {"pkg/cni"},
	}
	got := append(checkLayers(pkgs, layers), checkLean(pkgs, []string{"plugins/chelsio-sriov"})...)
	want := []string{
		"pkg/new ships but has no floor in the layers of this test (and docs/architecture.md)",
		"pkg/vf imports pkg/cni, which its floor does not allow",
		"plugins/chelsio-sriov depends on pkg/emulate (the emulator)",
		"plugins/chelsio-sriov depends on testing (test code)",
		"plugins/chelsio-sriov depends on internal/roottest (test code)",
		"plugins/chelsio-sriov depends on pkg/bench (the benchmark and its plots)",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("checks mismatch (-want +got):\n%s", diff)
	}
}
