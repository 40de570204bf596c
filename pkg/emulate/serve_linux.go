package emulate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf/vftest"
)

// Serve is the watcher: it keeps every worker's sysfs tree in step with the links of
// the worker's namespace until ctx ends. It writes watcher.pid, then watcher.ready
// once every namespace is subscribed.
func Serve(ctx context.Context, runDir, name string, log io.Writer) error {
	st, err := Load(runDir, name)
	if err != nil {
		return err
	}
	dir := st.Config.StateDir()
	if err := os.WriteFile(filepath.Join(dir, "watcher.pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	var logMu sync.Mutex
	logf := func(format string, args ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		fmt.Fprintf(log, time.Now().Format("15:04:05.000 ")+format+"\n", args...)
	}
	ready := make(chan struct{}, len(st.Workers))
	for i := range st.Workers {
		w := &st.Workers[i]
		wg.Go(func() {
			if err := watchWorker(ctx, st.Config.Name, w, ready, logf); err != nil && ctx.Err() == nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("worker %d: %w", w.Index, err))
				mu.Unlock()
				cancel()
			}
		})
	}
	for range st.Workers {
		select {
		case <-ready:
		case <-ctx.Done():
		}
	}
	if ctx.Err() == nil {
		if err := os.WriteFile(filepath.Join(dir, "watcher.ready"), nil, 0o600); err != nil {
			cancel()
			errs = append(errs, err)
		}
		logf("watching %d workers", len(st.Workers))
	}
	wg.Wait()
	return errors.Join(errs...)
}

// tracked is one netdev of the tree that the watcher follows.
type tracked struct {
	dev     vf.PCIAddr
	devPort int
	current string // name of its net/ entry in the tree; "" while away
}

func watchWorker(ctx context.Context, name string, w *Worker, ready chan<- struct{}, logf func(string, ...any)) error {
	tree := &vftest.Tree{Root: w.Root(), Opts: vftest.Options{AbsoluteLinks: true}}
	byAlt := map[string]*tracked{}
	for _, v := range w.VFs {
		t := &tracked{dev: v.Addr, devPort: v.Port}
		if names, err := w.Root().ReadDir(vftest.DevicePath(v.Addr) + "/net"); err == nil && len(names) > 0 {
			t.current = names[0]
		}
		byAlt[v.AltName] = t
	}
	for _, p := range w.Ports {
		byAlt[p.AltName] = &tracked{dev: p.Addr, devPort: p.Index, current: p.Netdev}
	}
	byIndex := map[int]*tracked{}
	prefix := fmt.Sprintf("%s-w%d.", name, w.Index)
	signalled := false
	for ctx.Err() == nil {
		ns, err := netns.GetFromPath(w.NetnsPath())
		if err != nil {
			return err
		}
		ch := make(chan netlink.LinkUpdate, 1024)
		done := make(chan struct{})
		subErr := make(chan error, 1)
		err = netlink.LinkSubscribeWithOptions(ch, done, netlink.LinkSubscribeOptions{
			Namespace:         &ns,
			ListExisting:      true,
			ReceiveBufferSize: 4 << 20,
			ErrorCallback: func(err error) {
				select {
				case subErr <- err:
				default:
				}
			},
		})
		ns.Close()
		if err != nil {
			return fmt.Errorf("subscribe to links of netns %s: %w", w.Netns, err)
		}
		if !signalled {
			ready <- struct{}{}
			signalled = true
		}
	loop:
		for {
			select {
			case <-ctx.Done():
				close(done)
				return nil
			case err := <-subErr:
				logf("worker %d: netlink: %v; resubscribing", w.Index, err)
				close(done)
				break loop
			case u, ok := <-ch:
				if !ok {
					logf("worker %d: subscription closed; resubscribing", w.Index)
					break loop
				}
				if err := apply(tree, u, prefix, byAlt, byIndex, logf, w.Index); err != nil {
					logf("worker %d: %v", w.Index, err)
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// apply updates the tree for one link message.
func apply(tree *vftest.Tree, u netlink.LinkUpdate, prefix string, byAlt map[string]*tracked, byIndex map[int]*tracked, logf func(string, ...any), wi int) error {
	a := u.Attrs()
	var t *tracked
	for _, alt := range a.AltNames {
		if strings.HasPrefix(alt, prefix) {
			t = byAlt[alt]
			break
		}
	}
	if t == nil {
		t = byIndex[a.Index]
	}
	if t == nil {
		return nil // not one of ours: lo, or something a test made
	}
	if u.Header.Type == unix.RTM_DELLINK {
		delete(byIndex, a.Index)
		if t.current == "" {
			return nil
		}
		logf("worker %d: %s (%s) left the namespace", wi, t.current, t.dev)
		err := tree.RemoveNetdev(t.dev, t.current)
		t.current = ""
		return err
	}
	byIndex[a.Index] = t
	if t.current != a.Name {
		if t.current != "" {
			if err := tree.RemoveNetdev(t.dev, t.current); err != nil {
				return err
			}
			logf("worker %d: %s (%s) renamed to %s", wi, t.current, t.dev, a.Name)
		} else {
			logf("worker %d: %s (%s) is in the namespace", wi, a.Name, t.dev)
		}
		t.current = ""
		if err := tree.AddNetdev(t.dev, vftest.Netdev{Name: a.Name, MAC: a.HardwareAddr.String(), MTU: a.MTU, DevPort: t.devPort, Type: 1}); err != nil {
			return err
		}
		t.current = a.Name
	}
	carrier := "0"
	if a.RawFlags&unix.IFF_LOWER_UP != 0 {
		carrier = "1"
	}
	for attr, val := range map[string]string{
		"mtu": strconv.Itoa(a.MTU), "address": a.HardwareAddr.String(),
		"operstate": operstate(a.OperState), "carrier": carrier,
	} {
		if err := tree.SetNetdevAttr(a.Name, attr, val); err != nil {
			return err
		}
	}
	return nil
}

func operstate(s netlink.LinkOperState) string {
	switch s {
	case netlink.OperUp:
		return "up"
	case netlink.OperDown:
		return "down"
	case netlink.OperLowerLayerDown:
		return "lowerlayerdown"
	case netlink.OperDormant:
		return "dormant"
	case netlink.OperNotPresent:
		return "notpresent"
	case netlink.OperTesting:
		return "testing"
	}
	return "unknown"
}
