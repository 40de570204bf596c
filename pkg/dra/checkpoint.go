package dra

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// DefaultCheckpoint is where the prepared claims are kept across restarts.
const DefaultCheckpoint = "/var/lib/kubelet/plugins/" + DriverName + "/checkpoint.json"

// checkpoint is the file of prepared claims: what Unprepare must undo, written
// before Prepare answers and after Unprepare has undone it.
type checkpoint struct {
	Version int                      `json:"version"`
	Claims  map[string]preparedClaim `json:"claims"` // by claim UID
}

// preparedClaim is one prepared claim.
type preparedClaim struct {
	Namespace string           `json:"namespace"`
	Name      string           `json:"name"`
	Devices   []preparedDevice `json:"devices"`
	CDISpec   string           `json:"cdiSpec"` // the file written
}

// preparedDevice is one VF of a prepared claim.
type preparedDevice struct {
	Requests   []string `json:"requests"`
	Pool       string   `json:"pool"`
	Device     string   `json:"device"`
	PCIAddress string   `json:"pciAddress"`
	CDIDevice  string   `json:"cdiDevice"`  // the fully-qualified CDI device ID
	DeviceInfo string   `json:"deviceInfo"` // the Multus device-info file written
}

const checkpointVersion = 1

// readCheckpoint reads the checkpoint at path; a missing file is an empty one.
func readCheckpoint(path string) (*checkpoint, error) {
	cp := &checkpoint{Version: checkpointVersion, Claims: map[string]preparedClaim{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cp, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read checkpoint: %w", err)
	}
	if err := json.Unmarshal(b, cp); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	if cp.Version != checkpointVersion {
		return nil, fmt.Errorf("checkpoint %s: version %d, want %d", path, cp.Version, checkpointVersion)
	}
	if cp.Claims == nil {
		cp.Claims = map[string]preparedClaim{}
	}
	return cp, nil
}

// write replaces the checkpoint at path atomically: a temporary file, synced, then
// renamed over it, and the directory synced.
func (cp *checkpoint) write(path string) error {
	b, err := json.MarshalIndent(cp, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(path, b, 0o600)
}

// writeAtomic writes b to path through a synced temporary file and a rename.
func writeAtomic(path string, b []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
