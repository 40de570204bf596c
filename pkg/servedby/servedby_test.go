package servedby

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Two daemons on one directory: the first to take a VF keeps it until it lets it
// go (Keep without it, or Close), and the other learns who holds it.
func TestTwoDaemons(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "served-by")
	dp, dra := New(dir, "chelsio-sriov-dp"), New(dir, "chelsio-sriov-dra")
	defer dp.Close()
	defer dra.Close()
	const a, b = "0000:81:01.0", "0000:81:01.1"
	if ok, _, err := dp.Take(a); !ok || err != nil {
		t.Fatalf("dp takes %s: ok %v, err %v", a, ok, err)
	}
	ok, holder, err := dra.Take(a)
	if ok || err != nil || !strings.HasPrefix(holder, "chelsio-sriov-dp pid ") {
		t.Fatalf("dra takes %s the dp holds: ok %v, holder %q, err %v", a, ok, holder, err)
	}
	if ok, _, err := dra.Take(b); !ok || err != nil {
		t.Fatalf("dra takes %s: ok %v, err %v", b, ok, err)
	}
	if ok, _, _ := dp.Take(a); !ok {
		t.Fatal("taking a VF already held must succeed")
	}
	dp.Keep(map[string]bool{})
	if got := dp.Held(); len(got) != 0 {
		t.Fatalf("after Keep(none) dp holds %v", got)
	}
	if ok, _, err := dra.Take(a); !ok || err != nil {
		t.Fatalf("dra takes %s after dp let it go: ok %v, err %v", a, ok, err)
	}
	if ok, _, _ := dp.Take(b); ok {
		t.Fatalf("dp took %s, which dra holds", b)
	}
	dra.Close()
	if ok, _, err := dp.Take(b); !ok || err != nil {
		t.Fatalf("dp takes %s after dra closed: ok %v, err %v", b, ok, err)
	}
}

func TestBadAddressAndDir(t *testing.T) {
	l := New(t.TempDir(), "x")
	for _, a := range []string{"", "../etc", "a/b", ".hidden"} {
		if ok, _, err := l.Take(a); ok || err == nil {
			t.Errorf("Take(%q): ok %v, err %v; want a refusal", a, ok, err)
		}
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if ok, _, err := New(filepath.Join(file, "sub"), "x").Take("0000:81:01.0"); ok || err == nil {
		t.Errorf("a lock directory under a file: ok %v, err %v; want an error", ok, err)
	}
}

func TestDirFor(t *testing.T) {
	const base = "/run/chelsio-sriov/served-by"
	if got := DirFor(base, "/sys/"); got != base {
		t.Errorf("DirFor(/sys/) = %q, want %q", got, base)
	}
	a, b := DirFor(base, "/tmp/emu/w1/sys"), DirFor(base, "/tmp/emu/w2/sys")
	if a == b || filepath.Dir(a) != base || filepath.Dir(b) != base {
		t.Errorf("DirFor of two trees: %q and %q; want two subdirectories of %s", a, b, base)
	}
	if again := DirFor(base, "/tmp/emu/w1/./sys"); again != a {
		t.Errorf("DirFor of one tree spelt twice: %q and %q", a, again)
	}
}

// A lock file keeps what its earlier holders wrote, since a holder overwrites its
// note in place: the holder a refused Take names is the one that holds the lock
// now, after a longer text of several lines; and after a note shorter than
// noteSize, as earlier versions wrote, the whole file says only the new holder (as
// those versions read it).
func TestHolderOverEarlierNote(t *testing.T) {
	want := fmt.Sprintf("chelsio-sriov-dp pid %d", os.Getpid())
	for name, earlier := range map[string]string{
		"longer text": "chelsio-sriov-dra pid 4194304 and then some text that runs past the note\nand a second line\n",
		"older note":  "chelsio-sriov-dra pid 4194304\n",
	} {
		older := name == "older note"
		dir := t.TempDir()
		const a = "0000:81:01.0"
		p := filepath.Join(dir, a+".lock")
		if err := os.WriteFile(p, []byte(earlier), 0o644); err != nil {
			t.Fatal(err)
		}
		dp := New(dir, "chelsio-sriov-dp")
		if ok, _, err := dp.Take(a); !ok || err != nil {
			t.Fatalf("%s: dp takes %s: ok %v, err %v", name, a, ok, err)
		}
		ok, holder, err := New(dir, "chelsio-sriov-dra").Take(a)
		if ok || err != nil || holder != want {
			t.Errorf("%s: dra takes %s: ok %v, holder %q, err %v; want holder %q", name, a, ok, holder, err, want)
		}
		if b, err := os.ReadFile(p); err != nil || older && strings.TrimSpace(string(b)) != want {
			t.Errorf("%s: the lock file says %q (err %v); want %q", name, b, err, want)
		}
		dp.Close()
	}
}
