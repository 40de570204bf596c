package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// Phases of an attachment's state file.
const (
	PhaseAdding   = "adding"   // written before the first change of ADD
	PhaseAttached = "attached" // written before ADD prints its result
)

// Attachment is the state file of one (container, ifname) attachment: what ADD
// found before changing anything and what it set, so that DEL and GC can give the
// VF back as it was.
type Attachment struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
	Netns       string `json:"netns"`
	Network     string `json:"network"`
	VF          string `json:"pciAddress"`
	Phase       string `json:"phase"`
	DPDK        bool   `json:"dpdk,omitempty"`
	// The VF netdev as ADD found it in the host namespace.
	HostName string `json:"hostName,omitempty"`
	HostMTU  int    `json:"hostMTU,omitempty"`
	HostMAC  string `json:"hostMAC,omitempty"`
	// PF-side settings: the original VF config and which settings ADD applies.
	PF *PFState `json:"pf,omitempty"`
	// IPAM plugin type, and the NetConf given to ADD (IPAM DEL gets it again).
	IPAMType string          `json:"ipamType,omitempty"`
	NetConf  json.RawMessage `json:"netconf,omitempty"`
	Result   json.RawMessage `json:"result,omitempty"`
	Created  time.Time       `json:"created"`
}

// PFState is the PF-side part of an attachment.
type PFState struct {
	Mgmt     string      `json:"mgmt"`
	VFIndex  int         `json:"vfIndex"`
	Orig     vf.VFConfig `json:"orig"`
	SetMAC   bool        `json:"setMAC,omitempty"`
	SetVLAN  bool        `json:"setVLAN,omitempty"`
	SetRate  bool        `json:"setRate,omitempty"`
	SetState bool        `json:"setState,omitempty"`
}

// Owner is the per-VF record: which attachment holds the VF.
type Owner struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
	Netns       string `json:"netns"`
}

// Store is the plugin's state directory: attachments/<container>_<ifname>.json,
// vfs/<pci address>.json and locks/<pci address>.lock, files 0600 in 0700 dirs.
type Store struct {
	Dir string
}

var containerIDRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`)

// checkKey refuses container IDs and ifnames that could leave the directory.
func checkKey(containerID, ifName string) error {
	switch {
	case len(containerID) == 0 || len(containerID) > 256 || !containerIDRE.MatchString(containerID):
		return withCode(CodeInvalidEnv, fmt.Errorf("CNI_CONTAINERID %q: want 1-256 of [a-zA-Z0-9_.-], starting with a letter or digit", trunc(containerID)))
	case len(ifName) == 0 || len(ifName) > 15 || strings.ContainsAny(ifName, "/:\x00 \t\n") || ifName == "." || ifName == "..":
		return withCode(CodeInvalidEnv, fmt.Errorf("CNI_IFNAME %q: want an interface name of 1-15 characters without '/', ':' or spaces", trunc(ifName)))
	}
	return nil
}

func trunc(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// ensure creates the directory tree, 0700, and refuses one that is a symbolic link.
func (s Store) ensure() error {
	for _, d := range []string{s.Dir, filepath.Join(s.Dir, "attachments"), filepath.Join(s.Dir, "vfs"), filepath.Join(s.Dir, "locks")} {
		fi, err := os.Lstat(d)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.MkdirAll(d, 0o700); err != nil {
				return withCode(CodeIOFailure, fmt.Errorf("create state dir: %w", err))
			}
			continue
		case err != nil:
			return withCode(CodeIOFailure, fmt.Errorf("state dir: %w", err))
		case fi.Mode()&fs.ModeSymlink != 0 || !fi.IsDir():
			return withCode(CodeInvalidConfig, fmt.Errorf("state dir %s is not a directory (a symbolic link?): refusing to use it", d))
		}
		if fi.Mode().Perm() != 0o700 {
			if err := os.Chmod(d, 0o700); err != nil {
				return withCode(CodeIOFailure, fmt.Errorf("state dir: %w", err))
			}
		}
	}
	return nil
}

func (s Store) attachmentPath(containerID, ifName string) string {
	return filepath.Join(s.Dir, "attachments", containerID+"_"+ifName+".json")
}

func (s Store) ownerPath(addr string) string { return filepath.Join(s.Dir, "vfs", addr+".json") }

// writeJSON writes v atomically: a 0600 temp file in the same directory, renamed
// over the target, so that a reader never sees half a file. There is no fsync on
// purpose: the state must survive the plugin's own crash (the page cache does), not
// the node's, because a reboot returns every VF to the host and GC then reclaims the
// stale files; an fsync would cost each ADD milliseconds for nothing.
func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return withCode(CodeIOFailure, fmt.Errorf("write state: %w", err))
	}
	tmp := f.Name()
	_, werr := f.Write(append(b, '\n'))
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(tmp)
		return withCode(CodeIOFailure, fmt.Errorf("write state %s: %w", path, err))
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return withCode(CodeIOFailure, fmt.Errorf("write state %s: %w", path, err))
	}
	return nil
}

// readJSON reads a state file without following a symbolic link.
func readJSON(path string, v any) error {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("read state %s: %w", path, err)
	}
	return nil
}

// LoadAttachment returns the attachment's state; fs.ErrNotExist when there is none.
func (s Store) LoadAttachment(containerID, ifName string) (*Attachment, error) {
	var a Attachment
	if err := readJSON(s.attachmentPath(containerID, ifName), &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// SaveAttachment writes the attachment's state and, when it starts (phase adding),
// the VF's owner record.
func (s Store) SaveAttachment(a *Attachment) error {
	if a.Phase == PhaseAdding {
		if err := writeJSON(s.ownerPath(a.VF), Owner{ContainerID: a.ContainerID, IfName: a.IfName, Netns: a.Netns}); err != nil {
			return err
		}
	}
	return writeJSON(s.attachmentPath(a.ContainerID, a.IfName), a)
}

// RemoveAttachment deletes the attachment's state, and the VF's owner record if it
// still names this attachment.
func (s Store) RemoveAttachment(containerID, ifName, addr string) error {
	var errs []error
	if addr != "" {
		if o, err := s.Owner(addr); err == nil && o.ContainerID == containerID && o.IfName == ifName {
			if err := os.Remove(s.ownerPath(addr)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	if err := os.Remove(s.attachmentPath(containerID, ifName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Owner returns the VF's owner record; fs.ErrNotExist when the VF is free.
func (s Store) Owner(addr string) (*Owner, error) {
	var o Owner
	if err := readJSON(s.ownerPath(addr), &o); err != nil {
		return nil, err
	}
	return &o, nil
}

// Attachments lists every attachment state file (for GC).
func (s Store) Attachments() ([]*Attachment, error) {
	entries, err := os.ReadDir(filepath.Join(s.Dir, "attachments"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*Attachment
	var errs []error
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		var a Attachment
		if err := readJSON(filepath.Join(s.Dir, "attachments", e.Name()), &a); err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, &a)
	}
	return out, errors.Join(errs...)
}

// Lock takes the VF's lock (flock on locks/<addr>.lock), waiting up to timeout;
// then it fails with code 11 (try again later).
func (s Store) Lock(addr string, timeout time.Duration) (func(), error) {
	p := filepath.Join(s.Dir, "locks", addr+".lock")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, withCode(CodeIOFailure, fmt.Errorf("lock VF %s: %w", addr, err))
	}
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() {
				_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			_ = f.Close()
			return nil, withCode(CodeIOFailure, fmt.Errorf("lock VF %s: %w", addr, err))
		}
		if time.Now().After(deadline) {
			_ = f.Close()
			return nil, withCode(CodeTryAgainLater, fmt.Errorf("VF %s is locked by another chelsio-sriov operation for more than %v; try again", addr, timeout))
		}
		time.Sleep(wait)
		wait = min(wait*2, 50*time.Millisecond)
	}
}
