package deviceplugin

import (
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cnistore"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// A cxgb4vf VF is stranded when its netdev is out of the node's network namespace
// (sysfs lists no net/ entry for it) and no attachment in the CNI plugin's state
// directory records it: nothing will bring it home, and every ADD on it fails, so it
// is reported Unhealthy until its netdev is home or an attachment records it.
//
// The CNI plugin's order keeps a VF in the middle of an ADD or DEL from looking
// stranded: ADD writes the attachment and the VF's owner record (phase adding)
// before it moves the netdev out, a failed ADD moves it home before it removes
// them, and DEL removes them only once the netdev is home (pkg/cni add.go record,
// rollback; del.go release, forget). So while the netdev is out, a record exists.
// The check reads in the same order, the other way round: sysfs (the netdev is
// out), then the state (no record), then sysfs again (still out). A record removed
// between the first two reads means a DEL ended, with the netdev home by the third.
// On top of that a VF is reported only once it has looked stranded for
// StrandedAfter, which covers a watcher that updates sysfs after the move (the
// emulated node) and any window this reasoning missed.

// reasonStranded is the health reason of a stranded VF.
const reasonStranded = "stranded: its netdev is out of the node's network namespace and no CNI attachment records it"

// defaultStrandedAfter is how long a VF must look stranded before it is reported.
const defaultStrandedAfter = time.Second

// strandedTracker remembers, across scans, which VFs look stranded and since when.
type strandedTracker struct {
	since    map[string]time.Time // address → first scan of the current run that found it stranded
	reported map[string]bool      // reported (and logged) as stranded
	stateErr string               // the last error reading the CNI state, logged once
}

// strandedVFs returns the VFs of vfs to report as stranded. When the CNI state
// cannot be read, it reports none: a VF is Unhealthy only on evidence.
func (s *ChelsioScanner) strandedVFs(vfs []*vf.VF) map[string]bool {
	if s.CNIStateDir == "" {
		return nil
	}
	var out []string
	home := map[string]string{} // address → why it is not stranded
	var cands []string
	for _, v := range vfs {
		if v.Driver == vf.DriverCxgb4VF && v.Netdev == "" {
			cands = append(cands, v.Addr.String())
		} else {
			home[v.Addr.String()] = "its netdev is in the node's network namespace"
		}
	}
	if len(cands) > 0 {
		recorded, err := recordedVFs(cnistore.Store{Dir: s.CNIStateDir}, cands)
		if err != nil {
			s.noteStateError(err)
			return nil
		}
		s.noteStateError(nil)
		for _, a := range cands {
			switch {
			case recorded[a]:
				home[a] = "a CNI attachment records it"
			case s.netdevHome(a):
				home[a] = "its netdev is in the node's network namespace"
			default:
				out = append(out, a)
			}
		}
	}
	return s.stranded.update(out, home, time.Now(), s.strandedAfter(), s.Log)
}

func (s *ChelsioScanner) strandedAfter() time.Duration {
	if s.StrandedAfter > 0 {
		return s.StrandedAfter
	}
	return defaultStrandedAfter
}

// netdevHome reads again whether the VF has a netdev in the node's sysfs.
func (s *ChelsioScanner) netdevHome(addr string) bool {
	names, err := s.Root.ReadDir("bus/pci/devices/" + addr + "/net")
	return err == nil && len(names) > 0
}

// noteStateError logs a CNI state read error once, and its end.
func (s *ChelsioScanner) noteStateError(err error) {
	t := &s.stranded
	switch {
	case err == nil && t.stateErr != "":
		t.stateErr = ""
		logTo(s.Log).Info("CNI state readable again: stranded VFs are reported", "dir", s.CNIStateDir)
	case err != nil && t.stateErr != err.Error():
		t.stateErr = err.Error()
		logTo(s.Log).Warn("cannot read the CNI state; no VF is reported stranded until it can be read", "dir", s.CNIStateDir, "err", err)
	}
}

// update records this scan's stranded VFs (away) and returns those stranded for at
// least after; home says why each VF still in sysfs is not stranded, for the log.
func (t *strandedTracker) update(away []string, home map[string]string, now time.Time, after time.Duration, log *slog.Logger) map[string]bool {
	if t.since == nil {
		t.since, t.reported = map[string]time.Time{}, map[string]bool{}
	}
	cur := map[string]bool{}
	for _, a := range away {
		cur[a] = true
		if _, ok := t.since[a]; !ok {
			t.since[a] = now
		}
	}
	out := map[string]bool{}
	for a, since := range t.since {
		switch {
		case !cur[a]:
			delete(t.since, a)
			if t.reported[a] {
				delete(t.reported, a)
				why, ok := home[a]
				if !ok {
					why = "it left sysfs"
				}
				logTo(log).Info("VF no longer stranded", "vf", a, "because", why)
			}
		case now.Sub(since) >= after:
			out[a] = true
			if !t.reported[a] {
				t.reported[a] = true
				logTo(log).Warn("VF stranded", "vf", a, "reason", reasonStranded)
			}
		}
	}
	return out
}

// recordedVFs reports which of addrs an owner record or an attachment of store
// records. An owner record that does not decode still records its VF; an attachment
// that cannot be read might record any, so it is an error. One listing of the owner
// records answers for every VF in a pod; the attachments are read only when a VF
// has none.
func recordedVFs(store cnistore.Store, addrs []string) (map[string]bool, error) {
	owned, err := store.OwnedVFs()
	if err != nil {
		return nil, fmt.Errorf("read the CNI owner records: %w", err)
	}
	out := map[string]bool{}
	for _, a := range owned {
		out[a] = true
	}
	if !slices.ContainsFunc(addrs, func(a string) bool { return !out[a] }) {
		return out, nil
	}
	atts, err := store.Attachments()
	if err != nil {
		return nil, fmt.Errorf("read the CNI attachments: %w", err)
	}
	for _, a := range atts {
		out[a.VF] = true
	}
	return out, nil
}

// logTo is log, or a logger that discards.
func logTo(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}
