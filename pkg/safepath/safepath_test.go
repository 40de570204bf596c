package safepath

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRefusalNamesThePart: a refusal names the key and the path, and the part at
// fault relative to the path when it is below it, in full when it is above.
func TestRefusalNamesThePart(t *testing.T) {
	s := Setting{Key: "dataDir", Path: "/var/lib/x"}
	tests := []struct {
		at, want string
	}{
		{"", `"dataDir" "/var/lib/x" is bad`},
		{"/var/lib/x", `"dataDir" "/var/lib/x" is bad`},
		{"/var/lib/x/locks/a.lock", `"dataDir" "/var/lib/x": "locks/a.lock" is bad`},
		{"/var", `"dataDir" "/var/lib/x": "/var" is bad`},
	}
	for _, tt := range tests {
		t.Run(tt.at, func(t *testing.T) {
			err := s.Refuse(tt.at, "is %s", "bad")
			if got := err.Error(); got != tt.want {
				t.Errorf("Refuse(%q) = %s, want %s", tt.at, got, tt.want)
			}
			if !IsRefusal(fmt.Errorf("wrapped: %w", err)) {
				t.Errorf("IsRefusal of a wrapped refusal is false")
			}
		})
	}
}

// TestOpenDirRefusesLinks: a walk refuses a symbolic link in the path, and tells a
// missing directory (fs.ErrNotExist) from a refusal; OpenFile refuses a link at the
// file.
func TestOpenDirRefusesLinks(t *testing.T) {
	root := t.TempDir()
	real := filepath.Join(root, "real")
	if err := os.Mkdir(real, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	s := Setting{Key: "logFile", Path: filepath.Join(root, "link", "x.log")}
	if _, _, err := s.OpenDir(filepath.Join(root, "link"), LinksOnly, false); !IsRefusal(err) {
		t.Errorf("OpenDir through a link: %v, want a refusal", err)
	}
	if _, _, err := s.OpenDir(filepath.Join(root, "missing"), LinksOnly, false); !errors.Is(err, fs.ErrNotExist) || IsRefusal(err) {
		t.Errorf("OpenDir of a missing directory: %v, want fs.ErrNotExist", err)
	}
	fd, _, err := s.OpenDir(real, LinksOnly, false)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := os.Symlink(filepath.Join(root, "elsewhere"), filepath.Join(real, "x.log")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.OpenFile(filepath.Join(real, "x.log"), fd, "x.log", unix.O_WRONLY|unix.O_CREAT, 0o600); !IsRefusal(err) {
		t.Errorf("OpenFile of a link: %v, want a refusal", err)
	}
	if _, err := os.Lstat(filepath.Join(root, "elsewhere")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OpenFile created the link's target: %v", err)
	}
}
