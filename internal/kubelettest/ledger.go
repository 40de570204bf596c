package kubelettest

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// CheckpointFile is the file, in the device-plugin directory, where the stand-in
// keeps its ledger and the resources it has known: kubelet's own file name there.
const CheckpointFile = "kubelet_internal_checkpoint"

// slot is one container's claim on one resource.
type slot struct{ pod, container, resource string }

// Assignment is what kubelet recorded for one container and one resource: the
// devices it gave and the plugin's answer to Allocate, which kubelet reuses when
// the container starts again rather than asking the plugin anew.
type Assignment struct {
	Pod, Container, Resource string
	IDs                      []string // in order
	Response                 *pluginapi.ContainerAllocateResponse
}

func (a *Assignment) clone() Assignment {
	return Assignment{Pod: a.Pod, Container: a.Container, Resource: a.Resource, IDs: slices.Clone(a.IDs), Response: a.Response}
}

// Admit gives n devices of resource to a container of a pod, as kubelet's device
// manager does when it admits the pod (one pod at a time):
//   - a container that already holds devices of the resource keeps them, and the
//     plugin is not asked again (the container restarted, or kubelet did); a
//     different count is refused;
//   - a resource that no plugin ever registered is refused, and so is one without
//     a healthy device: a plugin whose ListAndWatch stream has ended has none until
//     it registers again (and after a kubelet restart, none until it does);
//   - the devices come from the healthy ones that no container holds; fewer than n
//     there is refused; GetPreferredAllocation, when the plugin offers it, chooses
//     among them, and the rest are taken in ID order;
//   - the plugin's Allocate is called with them; on success the assignment is
//     recorded in the ledger and its checkpoint, on failure nothing is held.
func (k *Kubelet) Admit(ctx context.Context, pod, container, resource string, n int) (Assignment, error) {
	return k.admit(ctx, slot{pod, container, resource}, n, nil)
}

// AdmitDevices is Admit with kubelet's choice fixed to ids, for tests that need
// particular devices (as if topology alignment and the plugin's preference had led
// there). Kubelet could only have chosen devices that the plugin lists as healthy
// and that no other container holds: any other ID is refused here, as its own
// checks would have refused the pod, and the plugin is not called.
func (k *Kubelet) AdmitDevices(ctx context.Context, pod, container, resource string, ids ...string) (Assignment, error) {
	if ids == nil {
		ids = []string{}
	}
	return k.admit(ctx, slot{pod, container, resource}, len(ids), ids)
}

func (k *Kubelet) admit(ctx context.Context, s slot, n int, want []string) (Assignment, error) {
	if s.pod == "" || s.container == "" || s.resource == "" {
		return Assignment{}, fmt.Errorf("admit: pod %q, container %q, resource %q: none may be empty", s.pod, s.container, s.resource)
	}
	if n < 1 {
		return Assignment{}, fmt.Errorf("admit pod %q container %q: want at least one device of %s, got %d", s.pod, s.container, s.resource, n)
	}
	k.admitMu.Lock()
	defer k.admitMu.Unlock()

	k.mu.Lock()
	held, holds := k.ledger[s]
	if holds && len(held.IDs) != n {
		k.mu.Unlock()
		return Assignment{}, fmt.Errorf("pod %q container %q changed request for resource %q from %d to %d", s.pod, s.container, s.resource, len(held.IDs), n)
	}
	p := k.plugins[s.resource]
	if p == nil && !k.known[s.resource] {
		k.mu.Unlock()
		return Assignment{}, fmt.Errorf("cannot allocate unregistered device %s", s.resource)
	}
	listed, healthy := map[string]bool{}, map[string]bool{}
	if p != nil {
		for _, d := range p.Devices {
			listed[d.ID] = true
			if d.Health == pluginapi.Healthy && !p.Ended {
				healthy[d.ID] = true
			}
		}
	}
	if len(healthy) == 0 {
		k.mu.Unlock()
		return Assignment{}, fmt.Errorf("no healthy devices present; cannot allocate unhealthy devices %s", s.resource)
	}
	if holds {
		// A container that starts again keeps its devices, and the plugin is not
		// asked again; kubelet still wants them healthy.
		defer k.mu.Unlock()
		for _, id := range held.IDs {
			if !healthy[id] {
				return Assignment{}, fmt.Errorf("previously allocated devices are no longer healthy; cannot allocate unhealthy devices %s", s.resource)
			}
		}
		if want != nil && !slices.Equal(held.IDs, sortedCopy(want)) {
			return Assignment{}, fmt.Errorf("pod %q container %q already holds %v of %s, not %v", s.pod, s.container, held.IDs, s.resource, want)
		}
		return held.clone(), nil
	}
	holders := k.holdersLocked(s.resource)
	client, preferred := p.client, p.Options.GetGetPreferredAllocationAvailable()
	k.mu.Unlock()

	var chosen []string
	if want != nil {
		seen := map[string]bool{}
		for _, id := range want {
			switch {
			case seen[id]:
				return Assignment{}, fmt.Errorf("admit pod %q container %q: device %s of %s asked for twice", s.pod, s.container, id, s.resource)
			case holders[id] != "":
				return Assignment{}, fmt.Errorf("device %s of %s is assigned to %s; cannot allocate it to pod %q container %q", id, s.resource, holders[id], s.pod, s.container)
			case !listed[id]:
				return Assignment{}, fmt.Errorf("device %s of %s is not registered; cannot allocate it", id, s.resource)
			case !healthy[id]:
				return Assignment{}, fmt.Errorf("device %s of %s is not healthy; cannot allocate unhealthy devices", id, s.resource)
			}
			seen[id] = true
		}
		chosen = sortedCopy(want)
	} else {
		var available []string
		for id := range healthy {
			if holders[id] == "" {
				available = append(available, id)
			}
		}
		slices.Sort(available)
		if len(available) < n {
			return Assignment{}, fmt.Errorf("requested number of devices unavailable for %s. Requested: %d, Available: %d", s.resource, n, len(available))
		}
		var pref []string
		if preferred {
			r, err := client.GetPreferredAllocation(ctx, &pluginapi.PreferredAllocationRequest{ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{{
				AvailableDeviceIDs: available, AllocationSize: int32(n),
			}}})
			if err != nil {
				return Assignment{}, fmt.Errorf("GetPreferredAllocation of %s for pod %q container %q: %w", s.resource, s.pod, s.container, err)
			}
			for _, cr := range r.ContainerResponses {
				pref = append(pref, cr.DeviceIDs...)
			}
		}
		// The plugin's preference is a hint: only available devices count.
		for _, id := range append(pref, available...) {
			if len(chosen) < n && slices.Contains(available, id) && !slices.Contains(chosen, id) {
				chosen = append(chosen, id)
			}
		}
	}

	r, err := client.Allocate(ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: chosen}}})
	if err != nil {
		return Assignment{}, fmt.Errorf("allocate %v of %s for pod %q container %q: %w", chosen, s.resource, s.pod, s.container, err)
	}
	if len(r.ContainerResponses) != 1 {
		return Assignment{}, fmt.Errorf("allocate %v of %s for pod %q container %q: %d container responses, want 1", chosen, s.resource, s.pod, s.container, len(r.ContainerResponses))
	}
	a := &Assignment{Pod: s.pod, Container: s.container, Resource: s.resource, IDs: chosen, Response: r.ContainerResponses[0]}
	k.mu.Lock()
	k.ledger[s] = a
	k.signalLocked()
	k.mu.Unlock()
	if err := k.writeCheckpoint(); err != nil {
		return Assignment{}, err
	}
	return a.clone(), nil
}

func sortedCopy(ids []string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

// Release frees every device of a pod, as kubelet does once the pod is gone.
func (k *Kubelet) Release(pod string) error {
	k.admitMu.Lock()
	defer k.admitMu.Unlock()
	k.mu.Lock()
	n := 0
	for s := range k.ledger {
		if s.pod == pod {
			delete(k.ledger, s)
			n++
		}
	}
	k.signalLocked()
	k.mu.Unlock()
	if n == 0 {
		return fmt.Errorf("release pod %q: it holds no devices", pod)
	}
	return k.writeCheckpoint()
}

// Assignments returns the ledger, ordered by pod, container and resource.
func (k *Kubelet) Assignments() []Assignment {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]Assignment, 0, len(k.ledger))
	for _, a := range k.ledger {
		out = append(out, a.clone())
	}
	slices.SortFunc(out, func(a, b Assignment) int {
		return cmp.Or(cmp.Compare(a.Pod, b.Pod), cmp.Compare(a.Container, b.Container), cmp.Compare(a.Resource, b.Resource))
	})
	return out
}

// Holders maps each device of resource that a container holds to
// "pod <pod> container <container>".
func (k *Kubelet) Holders(resource string) map[string]string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.holdersLocked(resource)
}

func (k *Kubelet) holdersLocked(resource string) map[string]string {
	out := map[string]string{}
	for s, a := range k.ledger {
		if s.resource == resource {
			for _, id := range a.IDs {
				out[id] = fmt.Sprintf("pod %q container %q", s.pod, s.container)
			}
		}
	}
	return out
}

// checkpoint is the content of CheckpointFile.
type checkpoint struct {
	Assignments []Assignment
	Registered  []string // resources ever registered
}

// writeCheckpoint replaces the checkpoint file with the ledger, as kubelet does
// after each change: a temporary file renamed over it.
func (k *Kubelet) writeCheckpoint() error {
	k.mu.Lock()
	var c checkpoint
	for _, a := range k.ledger {
		c.Assignments = append(c.Assignments, a.clone())
	}
	for r := range k.known {
		c.Registered = append(c.Registered, r)
	}
	k.mu.Unlock()
	slices.SortFunc(c.Assignments, func(a, b Assignment) int {
		return cmp.Or(cmp.Compare(a.Pod, b.Pod), cmp.Compare(a.Container, b.Container), cmp.Compare(a.Resource, b.Resource))
	})
	slices.Sort(c.Registered)
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	k.ckptMu.Lock()
	defer k.ckptMu.Unlock()
	p := filepath.Join(k.Dir, CheckpointFile)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	return nil
}

// readCheckpoint replaces the ledger with the checkpoint file's; no file is an
// empty ledger.
func (k *Kubelet) readCheckpoint() error {
	ledger, known := map[slot]*Assignment{}, map[string]bool{}
	p := filepath.Join(k.Dir, CheckpointFile)
	b, err := os.ReadFile(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("read checkpoint: %w", err)
	default:
		var c checkpoint
		if err := json.Unmarshal(b, &c); err != nil {
			return fmt.Errorf("read checkpoint %s: %w", p, err)
		}
		for _, a := range c.Assignments {
			ledger[slot{a.Pod, a.Container, a.Resource}] = &a
		}
		for _, r := range c.Registered {
			known[r] = true
		}
	}
	k.mu.Lock()
	k.ledger, k.known = ledger, known
	k.mu.Unlock()
	return nil
}
