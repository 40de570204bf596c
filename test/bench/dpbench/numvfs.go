package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/emulate"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/uevent"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
	"github.com/chelsio-k8s/chelsio-sriov/test/bench/benchutil"
)

// numVFs times VF count changes on worker 1 of the emulated node: the last PF with
// VFs goes from its N VFs to 0 and back, runs times in all, and the test kubelet's
// ListAndWatch shows the new list. It does so twice, with the plugin's uevents on
// and off; both runs have file and link events off and the default rescan
// interval, so the only difference is the uevents.
//
// Each change is timed from the emulator's first uevent of it (the tree shows the
// change then), which the benchmark hears in the worker's namespace as the plugin
// does, and also from the write to sriov_numvfs, which adds the emulator's own work.
func (b *bench) numVFs(cvf, name string, runs int) error {
	w, err := worker1(name)
	if err != nil {
		return err
	}
	pf, n, err := lastPF(w)
	if err != nil {
		return err
	}
	l, err := uevent.ListenAt(w.NetnsPath(), 1<<20)
	if err != nil {
		return err
	}
	defer func() { _ = l.Close() }()
	heard := make(chan heardEvent, 4096)
	go listen(l, heard)
	fig := map[string][]time.Duration{}
	for _, mode := range []string{"uevent", "rescan"} {
		fromEvent, fromWrite, err := b.numVFsRun(cvf, name, w, pf, n, runs, mode == "uevent", heard)
		if err != nil {
			return fmt.Errorf("VF count changes, %s: %w", mode, err)
		}
		fig[mode], fig[mode+"_write"] = fromEvent, fromWrite
	}
	for key, d := range fig {
		b.res["dp_numvfs_"+key+"_median_ms"] = benchutil.PercentileMS(d, 50)
		b.res["dp_numvfs_"+key+"_p90_ms"] = benchutil.PercentileMS(d, 90)
	}
	b.res["dp_numvfs_ratio"] = b.res["dp_numvfs_rescan_median_ms"] / b.res["dp_numvfs_uevent_median_ms"]
	fmt.Printf("  VF count change (PF %s, %d <-> 0 VFs, %d changes) -> ListAndWatch, from the emulator's uevent:\n", pf, n, runs)
	fmt.Printf("    uevents: median %.1f ms, p90 %.1f ms; rescan only: median %.1f ms, p90 %.1f ms; ratio %.1f\n",
		b.res["dp_numvfs_uevent_median_ms"], b.res["dp_numvfs_uevent_p90_ms"], b.res["dp_numvfs_rescan_median_ms"], b.res["dp_numvfs_rescan_p90_ms"], b.res["dp_numvfs_ratio"])
	fmt.Printf("    from the sriov_numvfs write: uevents median %.1f ms, rescan only median %.1f ms\n",
		b.res["dp_numvfs_uevent_write_median_ms"], b.res["dp_numvfs_rescan_write_median_ms"])
	return nil
}

// lastPF returns the last PF of the worker's adapter that has VFs, and their number.
func lastPF(w *emulate.Worker) (vf.PCIAddr, int, error) {
	node, err := vf.Discover(w.Root(), vf.Options{})
	if err != nil {
		return vf.PCIAddr{}, 0, err
	}
	for _, a := range slices.Backward(node.Adapters) {
		for _, p := range slices.Backward(a.PFs) {
			if len(p.VFs) > 0 {
				return p.Addr, len(p.VFs), nil
			}
		}
	}
	return vf.PCIAddr{}, 0, errors.New("the emulated worker has no VFs")
}

// heardEvent is when the benchmark heard a uevent of the emulator, and its action.
type heardEvent struct {
	at     time.Time
	action string
}

// listen passes on every uevent a user process (the emulator) sends, until l closes.
func listen(l *uevent.Conn, heard chan<- heardEvent) {
	buf := make([]byte, uevent.MaxSize)
	for {
		n, sender, err := l.Receive(buf)
		if errors.Is(err, os.ErrClosed) {
			return
		}
		if err != nil || sender == 0 {
			continue
		}
		if m, err := uevent.Parse(buf[:n]); err == nil {
			select {
			case heard <- heardEvent{at: time.Now(), action: m.Action}:
			default:
			}
		}
	}
}

// numVFsRun starts the plugin on the worker, with its uevents on or off, and times
// runs changes of pf's VF count: n to 0, then back to n, and so on.
func (b *bench) numVFsRun(cvf, name string, w *emulate.Worker, pf vf.PCIAddr, n, runs int, uevents bool, heard <-chan heardEvent) (fromEvent, fromWrite []time.Duration, err error) {
	k, err := b.kubelet()
	if err != nil {
		return nil, nil, err
	}
	infoDir, err := b.tempDir()
	if err != nil {
		return nil, nil, err
	}
	p, err := b.start(cvf, "emulate", "exec", "--name", name, "--worker", "1", "--", b.dp,
		"--device-plugin-dir", k.Dir, "--metrics-address", "", "--config-file", filepath.Join(infoDir, "absent", "config.json"),
		"--device-info-dir", infoDir, "--served-by-dir", servedBy(infoDir), "--file-watch=false", "--link-events=false", "--uevents="+strconv.FormatBool(uevents))
	if err != nil {
		return nil, nil, err
	}
	defer stop(p)
	total := len(w.VFs)
	if err := wait(k, fmt.Sprintf("%d VFs listed", total), all(total)); err != nil {
		return nil, nil, err
	}
	numvfs := w.Root().Path("bus/pci/devices", pf.String(), "sriov_numvfs")
	for i := range max(2, runs&^1) { // even: the node ends as it began
		to, want, action := 0, total-n, "remove"
		if i%2 == 1 {
			to, want, action = n, total, "add"
		}
		drain(heard)
		t0 := time.Now()
		if err := writeAtomic(numvfs, strconv.Itoa(to)); err != nil {
			return nil, nil, err
		}
		if err := wait(k, fmt.Sprintf("%d VFs listed after %d written to %s", want, to, numvfs), all(want)); err != nil {
			return nil, nil, err
		}
		t2 := time.Now()
		t1, ok := firstHeard(heard, action)
		if !ok {
			return nil, nil, fmt.Errorf("no %s uevent of the emulator heard after %d written to %s", action, to, numvfs)
		}
		fromEvent, fromWrite = append(fromEvent, t2.Sub(t1)), append(fromWrite, t2.Sub(t0))
	}
	return fromEvent, fromWrite, nil
}

func drain(heard <-chan heardEvent) {
	for {
		select {
		case <-heard:
		default:
			return
		}
	}
}

// firstHeard returns when the first uevent with action was heard, waiting up to 5 s.
func firstHeard(heard <-chan heardEvent, action string) (time.Time, bool) {
	timeout := time.After(5 * time.Second)
	for {
		select {
		case e := <-heard:
			if e.action == action {
				return e.at, true
			}
		case <-timeout:
			return time.Time{}, false
		}
	}
}

// writeAtomic replaces a file by renaming a complete one over it, as the e2e tests
// write sriov_numvfs of an emulated tree.
func writeAtomic(path, content string) error {
	tmp := filepath.Join(filepath.Dir(path), ".dpbench-"+filepath.Base(path))
	if err := os.WriteFile(tmp, []byte(content+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
