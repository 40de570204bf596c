package node

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/chelsio-k8s/chelsio-sriov/internal/roottest"
)

// plugin is a stand-in CNI plugin that prints its version; with the argument
// "hold" it waits for a line on stdin, then prints "<version> done", so that a
// test can replace the file while it runs.
func plugin(version string) string {
	return fmt.Sprintf("#!/bin/sh\necho %s\nif [ \"$1\" = hold ]; then read x; echo %s done; fi\n", version, version)
}

// entries returns the names in dir: no temporary file may stay behind.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestInstall(t *testing.T) {
	tests := []struct {
		name     string
		existing string      // content at dest/chelsio-sriov before; "" none
		mode     fs.FileMode // its mode
		noDir    bool        // dest does not exist
		want     Action
		say      string
	}{
		{name: "into an empty directory", want: Installed, say: "installed "},
		{name: "creates the directory", noDir: true, want: Installed, say: "installed "},
		{name: "replaces another version", existing: plugin("v1"), mode: 0o755, want: Replaced, say: "replaced "},
		{name: "replaces a longer file", existing: plugin("v1") + strings.Repeat("#\n", 5000), mode: 0o755, want: Replaced, say: "replaced "},
		{name: "same content is left alone", existing: plugin("v2"), mode: 0o755, want: Unchanged, say: "already installed: "},
		{name: "same content, not executable", existing: plugin("v2"), mode: 0o644, want: Replaced, say: "replaced "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmp := t.TempDir()
			src := filepath.Join(tmp, "src")
			writeFile(t, src, plugin("v2"), 0o600)
			dest := filepath.Join(tmp, "opt/cni/bin")
			if !tt.noDir {
				must(t, os.MkdirAll(dest, 0o755))
			}
			path := filepath.Join(dest, PluginName)
			var before os.FileInfo
			if tt.existing != "" {
				writeFile(t, path, tt.existing, tt.mode)
				must(t, os.Chmod(path, tt.mode))
				var err error
				before, err = os.Stat(path)
				must(t, err)
			}

			// Verify passes only where Install would change nothing.
			if err := Verify(src, dest, PluginName); (err == nil) != (tt.want == Unchanged) {
				t.Errorf("Verify() before = %v, want an error unless the same file is there", err)
			}
			in, err := Install(src, dest, PluginName)
			if err != nil {
				t.Fatalf("Install() error: %v", err)
			}
			if err := Verify(src, dest, PluginName); err != nil {
				t.Errorf("Verify() after Install = %v", err)
			}
			if in.Action != tt.want || in.MadeDir != tt.noDir || in.Path != path || in.Src != src || in.Size != int64(len(plugin("v2"))) || len(in.SHA256) != 64 {
				t.Errorf("Install() = %+v, want action %d, MadeDir %v", in, tt.want, tt.noDir)
			}
			if s := in.String(); !strings.HasPrefix(s, tt.say) || !strings.Contains(s, path) || !strings.Contains(s, "sha256 "+in.SHA256[:12]) {
				t.Errorf("String() = %q, want it to start with %q and name %s and the hash", s, tt.say, path)
			}
			got, err := os.ReadFile(path)
			must(t, err)
			if string(got) != plugin("v2") {
				t.Errorf("installed content %q, want %q", got, plugin("v2"))
			}
			st, err := os.Stat(path)
			must(t, err)
			if st.Mode() != 0o755 {
				t.Errorf("installed mode %v, want -rwxr-xr-x", st.Mode())
			}
			if before != nil {
				// Unchanged: the very same file. Otherwise a new inode: the old one stays
				// whole for whoever runs it.
				if same := os.SameFile(before, st); same != (tt.want == Unchanged) {
					t.Errorf("same inode after install = %v, want %v", same, tt.want == Unchanged)
				}
			}
			if diff := cmp.Diff([]string{PluginName}, entries(t, dest)); diff != "" {
				t.Errorf("destination entries mismatch (-want +got):\n%s", diff)
			}

			// A second install changes nothing.
			again, err := Install(src, dest, PluginName)
			if err != nil || again.Action != Unchanged || again.SHA256 != in.SHA256 {
				t.Errorf("second Install() = %+v, %v; want Unchanged with the same hash", again, err)
			}
		})
	}
}

func TestInstallUmask(t *testing.T) {
	old := unix.Umask(0o077)
	defer unix.Umask(old)
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	writeFile(t, src, plugin("v1"), 0o600)
	if _, err := Install(src, tmp, "p"); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(tmp, "p"))
	must(t, err)
	if st.Mode().Perm() != 0o755 {
		t.Errorf("mode under umask 077 = %04o, want 0755", st.Mode().Perm())
	}
}

func TestInstallErrors(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, tmp string) (src, dest, name string)
		want    string // the whole message, with tmp written as $T
		errIs   error
		checkIn string // directory that must hold no temporary file
	}{
		{
			name:  "missing source",
			setup: func(t *testing.T, tmp string) (string, string, string) { return tmp + "/nope", tmp, PluginName },
			want:  "source $T/nope: no such file or directory",
			errIs: fs.ErrNotExist,
		},
		{
			name:  "source is a directory",
			setup: func(t *testing.T, tmp string) (string, string, string) { return tmp, tmp + "/bin", PluginName },
			want:  "source $T: not a regular file",
		},
		{
			name: "empty source",
			setup: func(t *testing.T, tmp string) (string, string, string) {
				writeFile(t, tmp+"/src", "", 0o755)
				return tmp + "/src", tmp + "/bin", PluginName
			},
			want: "source $T/src: empty file",
		},
		{
			name: "destination is a file",
			setup: func(t *testing.T, tmp string) (string, string, string) {
				writeFile(t, tmp+"/src", plugin("v1"), 0o755)
				writeFile(t, tmp+"/bin", "x", 0o644)
				return tmp + "/src", tmp + "/bin", PluginName
			},
			want: "destination $T/bin: not a directory",
		},
		{
			name: "destination below a file",
			setup: func(t *testing.T, tmp string) (string, string, string) {
				writeFile(t, tmp+"/src", plugin("v1"), 0o755)
				writeFile(t, tmp+"/opt", "x", 0o644)
				return tmp + "/src", tmp + "/opt/cni/bin", PluginName
			},
			want:  "destination $T/opt/cni/bin: not a directory",
			errIs: syscall.ENOTDIR,
		},
		{
			name: "target is a directory",
			setup: func(t *testing.T, tmp string) (string, string, string) {
				writeFile(t, tmp+"/src", plugin("v1"), 0o755)
				must(t, os.MkdirAll(tmp+"/bin/"+PluginName, 0o755))
				return tmp + "/src", tmp + "/bin", PluginName
			},
			want:    "destination $T/bin/chelsio-sriov: is a directory",
			checkIn: "bin",
		},
		{
			name: "name with a slash",
			setup: func(t *testing.T, tmp string) (string, string, string) {
				writeFile(t, tmp+"/src", plugin("v1"), 0o755)
				return tmp + "/src", tmp, "../x"
			},
			want: `invalid file name "../x": want a plain name such as chelsio-sriov`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmp := t.TempDir()
			src, dest, name := tt.setup(t, tmp)
			in, err := Install(src, dest, name)
			if err == nil {
				t.Fatalf("Install() = %v, want an error", in)
			}
			if got := strings.ReplaceAll(err.Error(), tmp, "$T"); got != tt.want {
				t.Errorf("Install() error = %q, want %q", got, tt.want)
			}
			if tt.errIs != nil && !errors.Is(err, tt.errIs) {
				t.Errorf("Install() error %v is not %v", err, tt.errIs)
			}
			if tt.checkIn != "" {
				if diff := cmp.Diff([]string{PluginName}, entries(t, filepath.Join(tmp, tt.checkIn))); diff != "" {
					t.Errorf("entries mismatch (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// TestPrivilegedInstallReadOnly installs into a read-only file system: a new or
// different binary is refused with a one-line error naming the directory, and an
// identical one is "already installed" without any write.
func TestPrivilegedInstallReadOnly(t *testing.T) {
	roottest.Require(t)
	tmp := t.TempDir()
	dest := filepath.Join(tmp, "bin")
	must(t, os.Mkdir(dest, 0o755))
	must(t, unix.Mount("tmpfs", dest, "tmpfs", 0, "size=1m"))
	t.Cleanup(func() {
		if err := unix.Unmount(dest, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dest, err)
		}
	})
	v1, v2 := filepath.Join(tmp, "v1"), filepath.Join(tmp, "v2")
	writeFile(t, v1, plugin("v1"), 0o755)
	writeFile(t, v2, plugin("v2"), 0o755)
	if _, err := Install(v1, dest, PluginName); err != nil {
		t.Fatal(err)
	}
	must(t, unix.Mount("", dest, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""))

	in, err := Install(v1, dest, PluginName)
	if err != nil || in.Action != Unchanged {
		t.Errorf("Install() of the same binary = %v, %v; want already installed", in, err)
	}
	_, err = Install(v2, dest, PluginName)
	if want := "destination " + dest + ": read-only file system"; err == nil || err.Error() != want {
		t.Errorf("Install() error = %v, want %q", err, want)
	}
	if !errors.Is(err, syscall.EROFS) {
		t.Errorf("Install() error %v is not EROFS", err)
	}
}

// TestInstallWhileExecuting replaces the plugin again and again while another
// process executes it in a loop, as a container runtime does during a DaemonSet
// rollout. Every run must print exactly v1 or v2 and succeed: no ETXTBSY, no
// ENOENT, no partial script. A run that started before a replacement finishes
// with its old content.
//
// The runs are another process, as the runtime is: a Go program that writes a
// file while it forks can make its own children fail with ETXTBSY
// (golang/go#22315), which says nothing about Install.
func TestInstallWhileExecuting(t *testing.T) {
	tmp := t.TempDir()
	dest := filepath.Join(tmp, "bin")
	v1, v2 := filepath.Join(tmp, "v1"), filepath.Join(tmp, "v2")
	writeFile(t, v1, plugin("v1"), 0o755)
	writeFile(t, v2, plugin("v2"), 0o755)
	if _, err := Install(v1, dest, PluginName); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dest, PluginName)

	// A run of v1 that is still going while v2 replaces it.
	held := exec.Command(path, "hold")
	hin, err := held.StdinPipe()
	must(t, err)
	hout, err := held.StdoutPipe()
	must(t, err)
	must(t, held.Start())
	heldOut := bufio.NewReader(hout)
	if l, err := heldOut.ReadString('\n'); err != nil || l != "v1\n" {
		t.Fatalf("held run printed %q, %v; want v1", l, err)
	}

	// The reader: runs the plugin until told to stop, one line per run.
	stop := filepath.Join(tmp, "stop")
	reader := exec.Command("sh", "-c", `while [ ! -e "$2" ]; do out=$("$1" 2>&1); echo "$?:$out"; done`, "reader", path, stop)
	rout, err := reader.StdoutPipe()
	must(t, err)
	reader.Stderr = os.Stderr
	must(t, reader.Start())
	var (
		mu    sync.Mutex
		runs  []string
		count int
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(rout)
		for sc.Scan() {
			mu.Lock()
			runs = append(runs, sc.Text())
			count++
			mu.Unlock()
		}
	}()
	seen := func() int {
		mu.Lock()
		defer mu.Unlock()
		return count
	}

	// Replace it, alternately with v2 and v1, until the reader has run it a few
	// hundred times during the replacements (or a deadline passes).
	installs := 0
	deadline := time.Now().Add(20 * time.Second)
	for installs < 400 || (seen() < 300 && time.Now().Before(deadline)) {
		src := v2
		if installs%2 == 1 {
			src = v1
		}
		if in, err := Install(src, dest, PluginName); err != nil || in.Action != Replaced {
			t.Fatalf("install %d: %v, %v; want a replacement", installs, in, err)
		}
		installs++
	}
	must(t, os.WriteFile(stop, nil, 0o644))
	<-done
	if err := reader.Wait(); err != nil {
		t.Errorf("reader: %v", err)
	}

	// The held run finishes as v1, although the file now holds another inode.
	must(t, hin.Close())
	rest, err := io.ReadAll(heldOut)
	must(t, err)
	if err := held.Wait(); err != nil || string(rest) != "v1 done\n" {
		t.Errorf("held run ended with %q, %v; want \"v1 done\"", rest, err)
	}

	n := map[string]int{}
	for _, r := range runs {
		n[r]++
	}
	for r, k := range n {
		if r != "0:v1" && r != "0:v2" {
			t.Errorf("%d runs printed %q; want 0:v1 or 0:v2", k, r)
		}
	}
	if n["0:v1"] == 0 || n["0:v2"] == 0 {
		t.Errorf("runs saw %v; want both versions", n)
	}
	t.Logf("%d installs, %d runs: %v", installs, len(runs), n)
	if diff := cmp.Diff([]string{PluginName}, entries(t, dest)); diff != "" {
		t.Errorf("destination entries mismatch (-want +got):\n%s", diff)
	}
}
