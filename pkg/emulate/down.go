package emulate

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
)

// Down removes everything Up created for the node called name: the watcher, the
// worker and fabric namespaces (with the veths in them), VF netdevs that were moved
// into other named namespaces, and the state directory. A node that is not up is
// not an error; leftovers of a failed Up with that name are removed too.
func Down(runDir, name string, log io.Writer) error {
	st, err := Load(runDir, name)
	if errors.Is(err, ErrNotUp) {
		c := Config{Name: name, RunDir: runDir}
		if derr := c.defaults(); derr != nil {
			return derr
		}
		st = &State{Config: c}
		// Leftovers of an interrupted Up: namespaces by name, then the directory.
		for w := 1; w <= 8; w++ {
			st.Workers = append(st.Workers, Worker{Index: w, Netns: workerNetns(c.Name, w)})
		}
		st.FabricNS = c.Name + "-fabric"
	} else if err != nil {
		return err
	}
	return teardown(st, log)
}

func teardown(st *State, log io.Writer) error {
	var errs []error
	if st.WatcherPID > 0 {
		errs = append(errs, stopWatcher(st.WatcherPID))
	} else if pid := watcherPIDFromFile(st); pid > 0 {
		errs = append(errs, stopWatcher(pid))
	}
	// VF netdevs moved out of their worker (into pods) survive the worker's
	// namespace: find them by their alternative name in every named namespace.
	prefix := st.Config.Name + "-w"
	errs = append(errs, removeStrays(prefix, st, log))
	for _, w := range st.Workers {
		if err := deleteNetns(w.Netns); err != nil {
			errs = append(errs, err)
		} else if w.Sysfs != "" {
			fmt.Fprintf(log, "worker %d: netns %s removed\n", w.Index, w.Netns)
		}
	}
	if st.FabricNS != "" {
		errs = append(errs, deleteNetns(st.FabricNS))
	}
	dir := st.Config.StateDir()
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// removeStrays deletes links whose alternative name carries the node's prefix from
// every namespace under /run/netns that is not one of the node's own.
func removeStrays(prefix string, st *State, log io.Writer) error {
	own := map[string]bool{st.FabricNS: true}
	for _, w := range st.Workers {
		own[w.Netns] = true
	}
	entries, err := os.ReadDir("/run/netns")
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if own[e.Name()] {
			continue
		}
		h, nsh, err := handleAt(e.Name())
		if err != nil {
			continue // not a namespace file, or already gone
		}
		links, err := h.LinkList()
		if err == nil {
			for _, l := range links {
				for _, alt := range l.Attrs().AltNames {
					if strings.HasPrefix(alt, prefix) {
						if err := h.LinkDel(l); err != nil && !errors.As(err, new(netlink.LinkNotFoundError)) {
							errs = append(errs, fmt.Errorf("netns %s: delete %s: %w", e.Name(), l.Attrs().Name, err))
						} else {
							fmt.Fprintf(log, "netns %s: removed emulated netdev %s\n", e.Name(), l.Attrs().Name)
						}
						break
					}
				}
			}
		}
		h.Close()
		nsh.Close()
	}
	return errors.Join(errs...)
}
