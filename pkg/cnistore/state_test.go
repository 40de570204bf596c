package cnistore

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const testVF = "0000:81:01.0"

// newStore returns a Store in a fresh 0700 directory, made as ADD makes it.
func newStore(t *testing.T) Store {
	t.Helper()
	root := filepath.Join(t.TempDir(), "r")
	if err := os.Mkdir(root, 0o700); err != nil {
		t.Fatal(err)
	}
	s := Store{Dir: filepath.Join(root, "state")}
	if err := s.Ensure(); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestAttachmentRoundTrip: what SaveAttachment writes, LoadAttachment, Owner and
// Attachments read back; RemoveAttachment takes the state and the owner record.
func TestAttachmentRoundTrip(t *testing.T) {
	s := newStore(t)
	want := &Attachment{
		ContainerID: "pod-a", IfName: "net1", Netns: "/run/netns/a", Network: "n", VF: testVF,
		Phase: PhaseAdding, HostName: "eth5", HostMTU: 1500, Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	if err := s.SaveAttachment(want); err != nil {
		t.Fatal(err)
	}
	got, err := s.LoadAttachment("pod-a", "net1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("LoadAttachment() mismatch (-want +got):\n%s", diff)
	}
	o, err := s.Owner(testVF)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&Owner{ContainerID: "pod-a", IfName: "net1", Netns: "/run/netns/a"}, o); diff != "" {
		t.Errorf("Owner() mismatch (-want +got):\n%s", diff)
	}
	all, err := s.Attachments()
	if err != nil || len(all) != 1 {
		t.Fatalf("Attachments() = %d, %v; want the one saved", len(all), err)
	}
	if err := s.RemoveAttachment("pod-a", "net1", testVF); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LoadAttachment("pod-a", "net1"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadAttachment after RemoveAttachment: %v, want fs.ErrNotExist", err)
	}
	if _, err := s.Owner(testVF); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Owner after RemoveAttachment: %v, want fs.ErrNotExist", err)
	}
}

// TestCorruptOwnerRecord: an owner record cut short by a power loss is a
// *CorruptError, and DropCorruptOwner removes it; a sound one it leaves.
func TestCorruptOwnerRecord(t *testing.T) {
	for name, content := range map[string]string{"empty": "", "cut short": `{"containerID":"pod`, "garbage": "\x00\x01"} {
		t.Run(name, func(t *testing.T) {
			s := newStore(t)
			p := filepath.Join(s.Dir, "vfs", testVF+".json")
			if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := s.Owner(testVF)
			if !IsCorrupt(err) {
				t.Fatalf("Owner() = %v, want a *CorruptError", err)
			}
			if err := s.DropCorruptOwner(testVF); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the corrupt owner record is still there: %v", err)
			}
		})
	}
	s := newStore(t)
	if err := s.SaveAttachment(&Attachment{ContainerID: "pod-a", IfName: "net1", VF: testVF, Phase: PhaseAdding}); err != nil {
		t.Fatal(err)
	}
	if err := s.DropCorruptOwner(testVF); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Owner(testVF); err != nil {
		t.Errorf("DropCorruptOwner removed a sound owner record: %v", err)
	}
}

// TestLockTimesOut: a second Lock of a held VF fails with a *LockedError once
// its wait is over, and succeeds once the first is released.
func TestLockTimesOut(t *testing.T) {
	s := newStore(t)
	unlock, err := s.Lock(testVF, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var le *LockedError
	if _, err := s.Lock(testVF, 20*time.Millisecond); !errors.As(err, &le) {
		t.Fatalf("Lock of a held VF: %v, want a *LockedError", err)
	}
	unlock()
	unlock2, err := s.Lock(testVF, time.Second)
	if err != nil {
		t.Fatalf("Lock after unlock: %v", err)
	}
	unlock2()
}

// TestOwnedVFs: every VF with an owner record, one that does not decode too; names
// that are no VF's record are not listed; a missing directory lists none.
func TestOwnedVFs(t *testing.T) {
	if got, err := (Store{Dir: filepath.Join(t.TempDir(), "none")}).OwnedVFs(); err != nil || got != nil {
		t.Fatalf("missing directory: %v, %v; want none", got, err)
	}
	s := newStore(t)
	if err := s.SaveAttachment(&Attachment{ContainerID: "pod-a", IfName: "net1", VF: testVF, Phase: PhaseAdding}); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"0000:81:01.1.json": "{trunc", "81:01.2.json": "{}", "notes.txt": ""} {
		if err := os.WriteFile(filepath.Join(s.Dir, "vfs", name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.OwnedVFs()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{testVF, "0000:81:01.1"}, got); diff != "" {
		t.Errorf("OwnedVFs mismatch (-want +got):\n%s", diff)
	}
}
