package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"encoding/hex"
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
	"time"
)

// stamp is what the binaries of a build must say they were built from.
type stamp struct{ version, commit, date string }

// line is how pkg/version prints a stamp after the binary's name.
func (s stamp) line() string {
	return fmt.Sprintf("%s (commit %s, built %s)", s.version, s.commit, s.date)
}

// checkout is the stamp of the checkout the tests run in, read from git here rather
// than through the Makefile: the commit, and the commit's time in UTC.
func checkout(t *testing.T) stamp {
	t.Helper()
	git := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("git", append([]string{"-C", repoRoot(t)}, args...)...).Output()
		if err != nil {
			t.Fatalf("git %s: %v", strings.Join(args, " "), err)
		}
		return strings.TrimSpace(string(out))
	}
	sec, err := strconv.ParseInt(git("log", "-1", "--format=%ct"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return stamp{
		version: git("describe", "--tags", "--always", "--dirty"),
		commit:  git("rev-parse", "HEAD"),
		date:    time.Unix(sec, 0).UTC().Format(time.RFC3339),
	}
}

// makeVars are the Makefile's variables that the tests set or take from the
// checkout: none comes from the environment the tests run in.
var makeVars = []string{"VERSION", "COMMIT", "DATE", "SOURCE_DATE_EPOCH", "IMAGE", "TAG", "DIST", "BIN", "CONTAINER_TOOL", "GO", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"}

// runMake runs make in the repository with extra environment; the output is
// returned whole, for the test's failure message.
func runMake(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", append([]string{"--no-print-directory", "-C", repoRoot(t)}, args...)...)
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return slices.Contains(makeVars, name)
	}), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// checkStamps runs the three binaries in dir with their version verbs: each must
// print its name and want, the CNI plugin as its CNI banner; CNI_COMMAND=VERSION
// must still print nothing but the spec's JSON.
func checkStamps(t *testing.T, dir string, want stamp) {
	t.Helper()
	for _, c := range []struct{ name, arg, line string }{
		{"chelsio-vf", "version", "chelsio-vf " + want.line()},
		{"chelsio-sriov-dp", "--version", "chelsio-sriov-dp " + want.line()},
		{"chelsio-sriov-dra", "--version", "chelsio-sriov-dra " + want.line()},
		{"chelsio-sriov", "--version", "CNI plugin chelsio-sriov " + want.line()},
	} {
		cmd := exec.Command(filepath.Join(dir, c.name), c.arg)
		cmd.Env = []string{}
		out, err := cmd.Output()
		if first, _, _ := strings.Cut(string(out), "\n"); err != nil || first != c.line {
			t.Errorf("%s %s: %v, first line %q; want %q", c.name, c.arg, err, first, c.line)
		}
	}
	cmd := exec.Command(filepath.Join(dir, "chelsio-sriov"), "--version")
	cmd.Env = []string{"CNI_COMMAND=VERSION"}
	out, err := cmd.Output()
	var v struct {
		CNIVersion        string   `json:"cniVersion"`
		SupportedVersions []string `json:"supportedVersions"`
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err != nil || dec.Decode(&v) != nil || dec.More() || !slices.Contains(v.SupportedVersions, "1.1.0") {
		t.Errorf("chelsio-sriov with CNI_COMMAND=VERSION: %v, printed %q; want only the spec's version JSON", err, out)
	}
}

// checkSums verifies dir's SHA256SUMS: it lists every other file of dir, and each
// line's hash is the file's.
func checkSums(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var listed []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Errorf("SHA256SUMS line %q is not <hash>  <file>", sc.Text())
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("SHA256SUMS lists %s: %v", name, err)
			continue
		}
		if h := sha256.Sum256(b); hex.EncodeToString(h[:]) != sum {
			t.Errorf("%s: sha256 %x, SHA256SUMS says %s", name, h, sum)
		}
		listed = append(listed, name)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range ents {
		if e.Name() != "SHA256SUMS" {
			files = append(files, e.Name())
		}
	}
	if !slices.Equal(listed, files) {
		t.Errorf("SHA256SUMS lists %q, the directory holds %q", listed, files)
	}
}

// TestRelease runs make release into a directory of its own, with a version and
// image repository of its own, and checks what it wrote: the three static binaries
// stamped with that version and the checkout's commit, manifests whose every image
// is the repository at that version (none :latest), and checksums that verify.
func TestRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the release binaries")
	}
	const version, image = "v0.0.0-e2e.1", "registry.example/chelsio/chelsio-sriov"
	dist := t.TempDir()
	if out, err := runMake(t, nil, "release", "DIST="+dist, "VERSION="+version, "IMAGE="+image); err != nil {
		t.Fatalf("make release: %v\n%s", err, out)
	}
	dir := filepath.Join(dist, version)
	want := checkout(t)
	want.version = version
	checkStamps(t, dir, want)
	checkSums(t, dir)
	for _, n := range []string{"chelsio-sriov", "chelsio-sriov-dp", "chelsio-sriov-dra", "chelsio-vf"} {
		checkStatic(t, filepath.Join(dir, n))
	}

	y, err := os.ReadFile(filepath.Join(dir, "chelsio-sriov.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	images := regexp.MustCompile(`(?m)^\s*-?\s*image:\s*(\S+)\s*$`).FindAllSubmatch(y, -1)
	if len(images) < 2 {
		t.Errorf("chelsio-sriov.yaml names %d images, want the device plugin's and the CNI installer's", len(images))
	}
	for _, m := range images {
		if string(m[1]) != image+":"+version {
			t.Errorf("chelsio-sriov.yaml: image %s, want %s:%s", m[1], image, version)
		}
	}
	if bytes.Contains(y, []byte(":latest")) {
		t.Error("chelsio-sriov.yaml mentions :latest")
	}
}

// checkStatic fails unless the binary at p is a static ELF built with CGO off and
// -trimpath.
func checkStatic(t *testing.T, p string) {
	t.Helper()
	f, err := elf.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP || prog.Type == elf.PT_DYNAMIC {
			t.Errorf("%s is dynamically linked", filepath.Base(p))
		}
	}
	bi, err := buildinfo.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]string{}
	for _, s := range bi.Settings {
		set[s.Key] = s.Value
	}
	if set["CGO_ENABLED"] != "0" || set["-trimpath"] != "true" {
		t.Errorf("%s: built with CGO_ENABLED=%q -trimpath=%q, want 0 and true", filepath.Base(p), set["CGO_ENABLED"], set["-trimpath"])
	}
}

// TestReleaseRefusesBadVersion: a VERSION that is no image tag (and would name a
// directory outside dist/) is refused in one line before anything is built.
func TestReleaseRefusesBadVersion(t *testing.T) {
	dist := t.TempDir()
	for _, v := range []string{"../x", "v1 2", "", "-v1"} {
		out, err := runMake(t, nil, "release", "DIST="+dist, "VERSION="+v)
		if err == nil || !strings.Contains(out, fmt.Sprintf("release: VERSION %q is not a usable version", v)) {
			t.Errorf("make release VERSION=%q: %v\n%s\nwant a refusal naming VERSION", v, err, out)
		}
	}
	if ents, err := os.ReadDir(dist); err != nil || len(ents) != 0 {
		t.Errorf("refused releases left %v in DIST (%v)", ents, err)
	}
}

// TestDockerfilesStampTheImage reads the two Dockerfiles: the release image builds
// its binaries with make build and the VERSION, COMMIT and DATE build arguments,
// and both label the image with the OCI annotations, the same in each. The offline
// one is built for real by TestPrivilegedImageBuild.
func TestDockerfilesStampTheImage(t *testing.T) {
	labels := map[string]map[string]string{}
	for _, name := range []string{"Dockerfile", "Dockerfile.local"} {
		b, err := os.ReadFile(filepath.Join(repoRoot(t), "images", name))
		if err != nil {
			t.Fatal(err)
		}
		src := strings.ReplaceAll(string(b), "\\\n", " ")
		l := map[string]string{}
		for _, m := range regexp.MustCompile(`(org\.opencontainers\.image\.[a-z]+)="([^"]*)"`).FindAllStringSubmatch(src, -1) {
			l[m[1]] = m[2]
		}
		labels[name] = l
		for k, v := range map[string]string{"version": "${VERSION}", "revision": "${COMMIT}", "created": "${DATE}", "licenses": "Apache-2.0", "source": "https://github.com/chelsio-k8s/chelsio-sriov"} {
			if got := l["org.opencontainers.image."+k]; got != v {
				t.Errorf("%s: label org.opencontainers.image.%s=%q, want %q", name, k, got, v)
			}
		}
		for _, k := range []string{"title", "description"} {
			if l["org.opencontainers.image."+k] == "" {
				t.Errorf("%s: no org.opencontainers.image.%s label", name, k)
			}
		}
	}
	if fmt.Sprint(labels["Dockerfile"]) != fmt.Sprint(labels["Dockerfile.local"]) {
		t.Errorf("the two images are labelled differently:\n%v\n%v", labels["Dockerfile"], labels["Dockerfile.local"])
	}
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "images", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `RUN make build BIN=/out VERSION="${VERSION}" COMMIT="${COMMIT}" DATE="${DATE}"`) {
		t.Error("images/Dockerfile does not build with make build and the VERSION, COMMIT and DATE arguments")
	}
}
