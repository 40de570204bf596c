package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chelsio-k8s/chelsio-sriov/internal/roottest"
)

// TestPrivilegedImageBuild builds the image of images/Dockerfile.local, the one
// made from local binaries with no registry, with buildah, as a machine without
// registry access does; the image must hold the three binaries as built, start
// the device plugin, run as the unprivileged user, and each binary must run from
// it. buildah keeps its storage in the test's own directory.
func TestPrivilegedImageBuild(t *testing.T) {
	roottest.Require(t)
	buildah := roottest.Tool(t, "buildah", "apt-get install buildah")
	store := t.TempDir()
	ba := func(args ...string) string {
		t.Helper()
		full := append([]string{"--root", filepath.Join(store, "root"), "--runroot", filepath.Join(store, "run"), "--storage-driver", "vfs"}, args...)
		cmd := exec.Command(buildah, full...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("buildah %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
		}
		return strings.TrimSpace(out.String())
	}

	// The build context: the Dockerfile and bin/ as make build leaves it.
	ctx := t.TempDir()
	names := []string{"chelsio-sriov", "chelsio-sriov-dp", "chelsio-vf"}
	if err := os.Mkdir(filepath.Join(ctx, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	built := map[string][]byte{}
	for _, n := range names {
		b, err := os.ReadFile(bin(t, n))
		if err != nil {
			t.Fatal(err)
		}
		built[n] = b
		if err := os.WriteFile(filepath.Join(ctx, "bin", n), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	df, err := os.ReadFile(filepath.Join(repoRoot(t), "images", "Dockerfile.local"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ctx, "Dockerfile"), df, 0o644); err != nil {
		t.Fatal(err)
	}
	const tag = "localhost/chelsio-sriov:e2e"
	ba("bud", "--layers=false", "-f", filepath.Join(ctx, "Dockerfile"), "-t", tag, ctx)
	t.Cleanup(func() {
		cmd := exec.Command(buildah, "--root", filepath.Join(store, "root"), "--runroot", filepath.Join(store, "run"), "--storage-driver", "vfs", "rmi", "--all", "--force")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("buildah rmi: %v\n%s", err, out)
		}
	})

	var img struct {
		OCIv1 struct {
			Config struct {
				Entrypoint []string
				User       string
			} `json:"config"`
		}
	}
	if err := json.Unmarshal([]byte(ba("inspect", "--type", "image", tag)), &img); err != nil {
		t.Fatal(err)
	}
	if c := img.OCIv1.Config; !slices.Equal(c.Entrypoint, []string{"/usr/bin/chelsio-sriov-dp"}) || c.User != "65532:65532" {
		t.Errorf("image config: entrypoint %q, user %q; want the device plugin, as 65532:65532", c.Entrypoint, c.User)
	}

	ctr := ba("from", tag)
	t.Cleanup(func() {
		cmd := exec.Command(buildah, "--root", filepath.Join(store, "root"), "--runroot", filepath.Join(store, "run"), "--storage-driver", "vfs", "rm", ctr)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("buildah rm: %v\n%s", err, out)
		}
	})
	mnt := ba("mount", ctr)
	t.Cleanup(func() {
		cmd := exec.Command(buildah, "--root", filepath.Join(store, "root"), "--runroot", filepath.Join(store, "run"), "--storage-driver", "vfs", "umount", ctr)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("buildah umount: %v\n%s", err, out)
		}
	})
	var files []string
	err = filepath.WalkDir(mnt, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(mnt, p)
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"usr/bin/chelsio-sriov", "usr/bin/chelsio-sriov-dp", "usr/bin/chelsio-vf"}
	if !slices.Equal(files, want) {
		t.Errorf("files in the image %q, want only %q", files, want)
	}
	for _, n := range names {
		p := filepath.Join(mnt, "usr", "bin", n)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Errorf("%s: %v", n, err)
			continue
		}
		if !bytes.Equal(b, built[n]) {
			t.Errorf("%s in the image differs from the one built", n)
		}
	}
	// Static binaries: they run from the image's tree with nothing else in it.
	out, err := exec.Command(filepath.Join(mnt, "usr", "bin", "chelsio-vf"), "--help").CombinedOutput()
	if !strings.Contains(string(out), "chelsio-vf") {
		t.Errorf("chelsio-vf --help from the image: %v\n%s", err, out)
	}
	cmd := exec.Command(filepath.Join(mnt, "usr", "bin", "chelsio-sriov"))
	cmd.Env = []string{"CNI_COMMAND=VERSION"}
	out, err = cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"supportedVersions"`) {
		t.Errorf("chelsio-sriov VERSION from the image: %v\n%s", err, out)
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
