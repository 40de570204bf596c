package safepath

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// TestFSCheckNamesPseudoFilesystems: fsCheck names the real pseudo filesystems
// mounted on the machine (procfs, sysfs, devtmpfs, every cgroup filesystem, and
// others where they are mounted) from their descriptors, and none for a test's
// temporary directory.
func TestFSCheckNamesPseudoFilesystems(t *testing.T) {
	mounts := mountTypes(t)
	want := map[string]string{"/proc": "proc", "/sys": "sysfs", t.TempDir(): ""}
	if mounts["/dev"] == "devtmpfs" {
		want["/dev"] = "devtmpfs"
	}
	cgroups := 0
	for mp, fstype := range mounts {
		switch fstype {
		case "cgroup", "cgroup2", "debugfs", "tracefs", "securityfs", "bpf", "configfs", "devpts", "mqueue", "efivarfs", "pstore", "fusectl", "binfmt_misc":
			want[mp] = fstype
			if strings.HasPrefix(fstype, "cgroup") {
				cgroups++
			}
		}
	}
	if cgroups == 0 {
		t.Error("no cgroup filesystem is mounted: the cgroup rule is untested")
	}
	for dir, fstype := range want {
		fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Errorf("open %s: %v", dir, err)
			continue
		}
		var c fsCheck
		got, err := c.pseudo(fd)
		unix.Close(fd)
		if err != nil || got != fstype {
			t.Errorf("pseudo(%s) = %q, %v; want %q", dir, got, err, fstype)
		}
	}
}

// TestFSCheckWithoutMountTable: where the mount table cannot be read, a directory
// with tmpfs' magic passes for a tmpfs (a devtmpfs among them: the prefix rule
// keeps /dev out unless the node allows it); the magic alone still refuses the
// others.
func TestFSCheckWithoutMountTable(t *testing.T) {
	c := fsCheck{mountInfo: filepath.Join(t.TempDir(), "missing")}
	for dir, want := range map[string]string{"/proc": "proc", "/sys": "sysfs", "/dev": ""} {
		fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.pseudo(fd)
		unix.Close(fd)
		if err != nil || got != want {
			t.Errorf("pseudo(%s) without a mount table = %q, %v; want %q", dir, got, err, want)
		}
	}
}

// TestParseMounts reads mountinfo lines, optional fields and all.
func TestParseMounts(t *testing.T) {
	const table = `23 26 0:6 / /dev rw,relatime shared:2 - devtmpfs devtmpfs rw,size=1k,mode=755
30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime shared:9 master:1 - cgroup2 cgroup2 rw
garbage
41 30 8:1 / /var\040lib rw - ext4 /dev/sda1 rw
`
	got, err := parseMounts(strings.NewReader(table))
	if err != nil {
		t.Fatal(err)
	}
	want := []mount{
		{id: 23, dev: unix.Mkdev(0, 6), fstype: "devtmpfs"},
		{id: 30, dev: unix.Mkdev(0, 27), fstype: "tmpfs"},
		{id: 40, dev: unix.Mkdev(0, 37), fstype: "cgroup2"},
		{id: 41, dev: unix.Mkdev(8, 1), fstype: "ext4"},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(mount{})); diff != "" {
		t.Errorf("parseMounts() mismatch (-want +got):\n%s", diff)
	}
}

// mountTypes maps the machine's mount points to their filesystem types (the last
// mount of each), from /proc/self/mounts: another table than the one the package
// reads, so that the test does not take the package's word for it.
func mountTypes(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for line := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && !strings.Contains(f[1], `\`) {
			out[f[1]] = f[2]
		}
	}
	return out
}
