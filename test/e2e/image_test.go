package e2e

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chelsio-k8s/chelsio-sriov/internal/roottest"
)

// imageStore is a buildah with its storage in a test's own directory, which make
// reaches through CONTAINERS_STORAGE_CONF.
type imageStore struct {
	t       *testing.T
	buildah string
	env     []string
}

func newImageStore(t *testing.T) *imageStore {
	t.Helper()
	buildah := roottest.Tool(t, "buildah", "apt-get install buildah")
	dir := t.TempDir()
	conf := filepath.Join(dir, "storage.conf")
	text := fmt.Sprintf("[storage]\ndriver = \"vfs\"\ngraphroot = %q\nrunroot = %q\n", filepath.Join(dir, "root"), filepath.Join(dir, "run"))
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &imageStore{t: t, buildah: buildah, env: []string{"CONTAINERS_STORAGE_CONF=" + conf}}
	t.Cleanup(func() {
		if _, err := s.run("rmi", "--all", "--force"); err != nil {
			t.Errorf("buildah rmi: %v", err)
		}
	})
	return s
}

func (s *imageStore) run(args ...string) (string, error) {
	cmd := exec.Command(s.buildah, args...)
	cmd.Env = append(os.Environ(), s.env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("buildah %s: %w\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return strings.TrimSpace(out.String()), nil
}

func (s *imageStore) must(args ...string) string {
	s.t.Helper()
	out, err := s.run(args...)
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

// TestPrivilegedImageBuild builds the offline image with make image-local, as a
// machine without registry access does, with buildah storing in the test's own
// directory. The image must hold the three binaries as make build made them and
// nothing else, start the device plugin as the unprivileged user, carry the OCI
// labels of the checkout, be the same image when built again, and each binary
// must run from it and print the commit the checkout is at. make image-archive then saves it for ctr images import.
func TestPrivilegedImageBuild(t *testing.T) {
	roottest.Require(t)
	s := newImageStore(t)
	const image, tag = "localhost/chelsio-sriov-e2e", "e2e"
	bins, dist := filepath.Join(t.TempDir(), "bin"), t.TempDir()
	want := checkout(t)
	args := []string{"BIN=" + bins, "DIST=" + dist, "IMAGE=" + image, "TAG=" + tag, "CONTAINER_TOOL=" + s.buildah}
	if out, err := runMake(t, s.env, append([]string{"image-local"}, args...)...); err != nil {
		t.Fatalf("make image-local: %v\n%s", err, out)
	}
	checkImageConfig(t, s, image+":"+tag, want)
	// The image's times are the commit's: building it again gives the same image.
	id := s.must("images", "--noheading", "--no-trunc", "--format", "{{.ID}}", image+":"+tag)
	if out, err := runMake(t, s.env, append([]string{"image-local"}, args...)...); err != nil {
		t.Fatalf("make image-local again: %v\n%s", err, out)
	}
	if again := s.must("images", "--noheading", "--no-trunc", "--format", "{{.ID}}", image+":"+tag); again != id {
		t.Errorf("make image-local twice gave images %s and %s, want one", id, again)
	}

	ctr := s.must("from", image+":"+tag)
	t.Cleanup(func() {
		if _, err := s.run("rm", ctr); err != nil {
			t.Error(err)
		}
	})
	mnt := s.must("mount", ctr)
	t.Cleanup(func() {
		if _, err := s.run("umount", ctr); err != nil {
			t.Error(err)
		}
	})
	checkImageFiles(t, mnt, bins)
	// Static binaries: they run from the image's tree with nothing else in it.
	checkStamps(t, filepath.Join(mnt, "usr", "bin"), want)

	if out, err := runMake(t, s.env, append([]string{"image-archive"}, args...)...); err != nil {
		t.Fatalf("make image-archive: %v\n%s", err, out)
	}
	dir := filepath.Join(dist, want.version)
	checkArchive(t, filepath.Join(dir, "chelsio-sriov-image.tar"), image+":"+tag)
	checkSums(t, dir)
}

// checkImageConfig checks the image's entrypoint, user and OCI labels.
func checkImageConfig(t *testing.T, s *imageStore, ref string, want stamp) {
	t.Helper()
	var img struct {
		OCIv1 struct {
			Config struct {
				Entrypoint []string
				User       string
				Labels     map[string]string
			} `json:"config"`
		}
	}
	if err := json.Unmarshal([]byte(s.must("inspect", "--type", "image", ref)), &img); err != nil {
		t.Fatal(err)
	}
	c := img.OCIv1.Config
	if !slices.Equal(c.Entrypoint, []string{"/usr/bin/chelsio-sriov-dp"}) || c.User != "65532:65532" {
		t.Errorf("image config: entrypoint %q, user %q; want the device plugin, as 65532:65532", c.Entrypoint, c.User)
	}
	for k, v := range map[string]string{"version": want.version, "revision": want.commit, "created": want.date, "title": "chelsio-sriov"} {
		if got := c.Labels["org.opencontainers.image."+k]; got != v {
			t.Errorf("label org.opencontainers.image.%s = %q, want %q", k, got, v)
		}
	}
}

// checkImageFiles checks that the image's tree at mnt holds the binaries in bins and
// nothing else.
func checkImageFiles(t *testing.T, mnt, bins string) {
	t.Helper()
	files := filesUnder(t, mnt)
	want := []string{"usr/bin/chelsio-sriov", "usr/bin/chelsio-sriov-dp", "usr/bin/chelsio-sriov-dra", "usr/bin/chelsio-vf"}
	if !slices.Equal(files, want) {
		t.Errorf("files in the image %q, want only %q", files, want)
	}
	for _, f := range want {
		got, err := os.ReadFile(filepath.Join(mnt, f))
		if err != nil {
			t.Error(err)
			continue
		}
		built, err := os.ReadFile(filepath.Join(bins, filepath.Base(f)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, built) {
			t.Errorf("%s in the image differs from the one make build made", f)
		}
	}
}

// checkArchive reads a saved image: a docker-archive whose manifest names ref,
// which is what ctr -n k8s.io images import takes.
func checkArchive(t *testing.T, path, ref string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			t.Fatalf("%s has no manifest.json", path)
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name != "manifest.json" {
			continue
		}
		var m []struct{ RepoTags, Layers []string }
		if err := json.NewDecoder(tr).Decode(&m); err != nil {
			t.Fatal(err)
		}
		if len(m) != 1 || !slices.Equal(m[0].RepoTags, []string{ref}) || len(m[0].Layers) == 0 {
			t.Errorf("archive manifest %+v, want one image tagged %s", m, ref)
		}
		return
	}
}

// repoRoot is the repository's top directory (the tests run in test/e2e).
func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(filepath.Dir(wd))
}
