package cnistore

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cut"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/safepath"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// Phase is where an attachment is in its life, as its state file says.
type Phase string

// Phases of an attachment's state file.
const (
	PhaseAdding   Phase = "adding"   // written before the first change of ADD
	PhaseAttached Phase = "attached" // written before ADD prints its result
	// PhaseIPAMPending marks the state of an attachment whose VF is back but whose
	// IPAM DEL could not run (the IPAM plugin was not in CNI_PATH): the record has
	// no VF, only what IPAM DEL needs, so that a later DEL or GC of the attachment
	// frees the lease once the plugin is back.
	PhaseIPAMPending Phase = "ipam-pending"
)

// Attachment is the state file of one (container, ifname) attachment: what ADD
// found before changing anything and what it set, so that DEL and GC can give the
// VF back as it was.
type Attachment struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
	Netns       string `json:"netns"`
	Network     string `json:"network"`
	// The pod, as the runtime names it in CNI_ARGS (K8S_POD_NAMESPACE,
	// K8S_POD_NAME), for messages that name who holds the VF.
	PodNamespace string `json:"podNamespace,omitempty"`
	PodName      string `json:"podName,omitempty"`
	VF           string `json:"pciAddress"`
	Phase        Phase  `json:"phase"`
	DPDK         bool   `json:"dpdk,omitempty"`
	// The VF netdev as ADD found it in the host namespace.
	HostName string `json:"hostName,omitempty"`
	HostMTU  int    `json:"hostMTU,omitempty"`
	HostMAC  string `json:"hostMAC,omitempty"`
	// PodIfindex is the VF netdev's ifindex in the pod, which a pod cannot give
	// to a link of its own while the VF holds it: DEL and CHECK know the VF by it
	// where the kernel does not say which device a link is (docs/emulation.md).
	PodIfindex int `json:"podIfindex,omitempty"`
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

// DefaultDir holds the plugin's state when the NetConf names no dataDir.
const DefaultDir = "/var/lib/cni/chelsio-sriov"

// Store is the plugin's state directory: attachments/<container>_<ifname>.json,
// vfs/<pci address>.json and locks/<pci address>.lock, files 0600 in 0700
// directories owned by the plugin's user.
//
// Every operation opens the directory afresh, one path component at a time from
// "/" without following a symbolic link (package safepath), checks it (no link
// anywhere in dataDir, every directory above it root's or the plugin user's and
// not writable by others without the sticky bit, dataDir and its subdirectories
// the plugin user's own, mode 0700 or stricter), and reaches every file through
// that descriptor with O_NOFOLLOW. A path checked once is never resolved again, so
// nothing can swap a directory or file for a link between the check and the use.
//
// Only ADD makes directories or changes their modes (Ensure): DEL, GC, CHECK and
// STATUS use what they find, and a missing one means that nothing is recorded.
type Store struct {
	Dir string
}

// setting is the store's directory as the NetConf gives it, for the walk and its
// refusals.
func (s Store) setting() safepath.Setting { return safepath.Setting{Key: "dataDir", Path: s.Dir} }

// stateSubdirs are the state directory's subdirectories.
var stateSubdirs = []string{"attachments", "vfs", "locks"}

// maxStateFile bounds a state file read: one attachment's record is a few KiB,
// and writeJSON never writes one that DEL could not read back.
const maxStateFile = 1 << 20

// LoadAttachment returns the attachment's state; fs.ErrNotExist when there is none.
func (s Store) LoadAttachment(containerID, ifName string) (*Attachment, error) {
	if err := CheckKey(containerID, ifName); err != nil {
		return nil, err
	}
	return readRecord[Attachment](s, "attachments", AttachmentFile(containerID, ifName))
}

// readRecord decodes the state file name of the subdirectory sub.
func readRecord[T any](s Store, sub, name string) (*T, error) {
	d, err := s.open()
	if err != nil {
		return nil, err
	}
	defer d.close()
	var v T
	if err := d.readJSON(sub, name, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// SaveAttachment writes the attachment's state and, when it starts (phase adding),
// the VF's owner record. Both targets are checked before either is written: a
// symbolic link (or anything but a regular file) in the place of one refuses the
// save with nothing written.
func (s Store) SaveAttachment(a *Attachment) error {
	if err := CheckKey(a.ContainerID, a.IfName); err != nil {
		return err
	}
	owner := a.Phase == PhaseAdding
	if owner {
		if err := checkAddr(a.VF); err != nil {
			return err
		}
	}
	d, err := s.open()
	if err != nil {
		return err
	}
	defer d.close()
	name := AttachmentFile(a.ContainerID, a.IfName)
	targets := [][2]string{{"attachments", name}}
	if owner {
		targets = append(targets, [2]string{"vfs", a.VF + ".json"})
	}
	for _, t := range targets {
		dir, err := d.sub(t[0])
		if err != nil {
			return err
		}
		if err := s.setting().CheckFile(d.at(t[0], t[1]), dir, t[1]); err != nil {
			return err
		}
	}
	if owner {
		if err := d.writeJSON("vfs", a.VF+".json", Owner{ContainerID: a.ContainerID, IfName: a.IfName, Netns: a.Netns}); err != nil {
			return err
		}
	}
	return d.writeJSON("attachments", name, a)
}

// RemoveAttachment deletes the attachment's state, and the VF's owner record if it
// still names this attachment.
func (s Store) RemoveAttachment(containerID, ifName, addr string) error {
	return s.remove(containerID, ifName, addr, true)
}

// ReleaseOwner deletes the VF's owner record if it still names this attachment,
// and keeps the attachment's state.
func (s Store) ReleaseOwner(containerID, ifName, addr string) error {
	return s.remove(containerID, ifName, addr, false)
}

func (s Store) remove(containerID, ifName, addr string, attachment bool) error {
	if err := CheckKey(containerID, ifName); err != nil {
		return err
	}
	d, err := s.open()
	if isNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer d.close()
	var errs []error
	if addr != "" && checkAddr(addr) == nil {
		var o Owner
		if err := d.readJSON("vfs", addr+".json", &o); err == nil && o.ContainerID == containerID && o.IfName == ifName {
			if err := d.remove("vfs", addr+".json"); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if attachment {
		if err := d.remove("attachments", AttachmentFile(containerID, ifName)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// DropCorruptOwner removes the VF's owner record if it does not decode (call with
// the VF's lock held).
func (s Store) DropCorruptOwner(addr string) error {
	if err := checkAddr(addr); err != nil {
		return err
	}
	d, err := s.open()
	if err != nil {
		return err
	}
	defer d.close()
	var o Owner
	if err := d.readJSON("vfs", addr+".json", &o); !IsCorrupt(err) {
		return nil
	}
	return d.remove("vfs", addr+".json")
}

// Owner returns the VF's owner record; fs.ErrNotExist when the VF is free.
func (s Store) Owner(addr string) (*Owner, error) {
	if err := checkAddr(addr); err != nil {
		return nil, err
	}
	return readRecord[Owner](s, "vfs", addr+".json")
}

// Attachments lists every attachment state file (for GC). A file whose record
// does not name an attachment that would be stored under that name is reported
// and skipped: GC acts only on keys that pass CheckKey.
func (s Store) Attachments() ([]*Attachment, error) {
	d, names, err := s.openNames("attachments")
	if d == nil {
		return nil, err
	}
	defer d.close()
	var out []*Attachment
	var errs []error
	for _, n := range names {
		if !strings.HasSuffix(n, ".json") || strings.HasPrefix(n, ".") {
			continue
		}
		var a Attachment
		if err := d.readJSON("attachments", n, &a); err != nil {
			errs = append(errs, err)
			continue
		}
		if CheckKey(a.ContainerID, a.IfName) != nil || AttachmentFile(a.ContainerID, a.IfName) != n {
			errs = append(errs, fmt.Errorf("state file %s records container %s, ifname %s, which is not the attachment of its name: skipped", d.at("attachments", n), cut.Quote(a.ContainerID), cut.Quote(a.IfName)))
			continue
		}
		out = append(out, &a)
	}
	return out, errors.Join(errs...)
}

// OwnedVFs lists the VFs that have an owner record, whatever the record holds (one
// that does not decode still says that an attachment took the VF), sorted: one
// listing of vfs/, for a reader that asks about many VFs at once. A missing
// directory lists none.
func (s Store) OwnedVFs() ([]string, error) {
	d, names, err := s.openNames("vfs")
	if d == nil {
		return nil, err
	}
	d.close()
	var out []string
	for _, n := range names {
		if addr, ok := strings.CutSuffix(n, ".json"); ok && checkAddr(addr) == nil {
			out = append(out, addr)
		}
	}
	return out, nil
}

// openNames opens the state directory and lists its subdirectory sub, sorted. d
// is nil, for the caller to return err, when there is nothing to list (a missing
// directory is no error) or the listing failed; otherwise the caller closes d.
func (s Store) openNames(sub string) (d *stateDir, names []string, err error) {
	d, err = s.open()
	if isNotExist(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	names, err = d.names(sub)
	if err != nil || names == nil {
		d.close()
		return nil, nil, err
	}
	return d, names, nil
}

// names lists a subdirectory, sorted; nil, and no error, when it is missing.
func (d *stateDir) names(sub string) ([]string, error) {
	dir, err := d.sub(sub)
	if isNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	rfd, err := unix.Openat(dir, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: d.at(sub, ""), Err: err}
	}
	rf := os.NewFile(uintptr(rfd), d.at(sub, ""))
	names, err := rf.Readdirnames(-1)
	rf.Close()
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}
