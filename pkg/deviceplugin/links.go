package deviceplugin

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// LinkWatcher follows the link state of every netdev of the current network
// namespace through netlink events, so that a port going down is seen at once
// without touching any VF netdev.
type LinkWatcher struct {
	mu      sync.Mutex
	up      map[string]bool
	changed chan struct{}
}

// WatchLinks subscribes to link events until ctx ends. It returns once the current
// state of every link is known.
func WatchLinks(ctx context.Context, log *slog.Logger) (*LinkWatcher, error) {
	w := &LinkWatcher{up: map[string]bool{}, changed: make(chan struct{}, 1)}
	links, err := netlink.LinkList()
	if err != nil {
		return nil, err
	}
	for _, l := range links {
		w.set(l.Attrs(), false)
	}
	ch, done, err := subscribe()
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				close(done)
				return
			case u, ok := <-ch:
				if ok {
					if u.Header.Type == unix.RTM_DELLINK {
						w.remove(u.Attrs().Name)
					} else {
						w.set(u.Attrs(), true)
					}
					continue
				}
				// The subscription ended (buffer overrun): start again, re-reading all.
				log.Warn("netlink link subscription ended; resubscribing")
				for ctx.Err() == nil {
					if ch, done, err = subscribe(); err == nil {
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
				if links, err := netlink.LinkList(); err == nil {
					for _, l := range links {
						w.set(l.Attrs(), true)
					}
				}
			}
		}
	}()
	return w, nil
}

func subscribe() (chan netlink.LinkUpdate, chan struct{}, error) {
	ch := make(chan netlink.LinkUpdate, 256)
	done := make(chan struct{})
	err := netlink.LinkSubscribeWithOptions(ch, done, netlink.LinkSubscribeOptions{ReceiveBufferSize: 1 << 20})
	return ch, done, err
}

func linkUp(a *netlink.LinkAttrs) bool {
	return a.RawFlags&unix.IFF_UP != 0 && a.RawFlags&unix.IFF_LOWER_UP != 0
}

func (w *LinkWatcher) set(a *netlink.LinkAttrs, notify bool) {
	up := linkUp(a)
	w.mu.Lock()
	old, known := w.up[a.Name]
	w.up[a.Name] = up
	w.mu.Unlock()
	if notify && (!known || old != up) {
		w.notify()
	}
}

func (w *LinkWatcher) remove(name string) {
	w.mu.Lock()
	delete(w.up, name)
	w.mu.Unlock()
	w.notify()
}

func (w *LinkWatcher) notify() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// PortUp implements PortLinks.
func (w *LinkWatcher) PortUp(netdev string) (up, known bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	up, known = w.up[netdev]
	return up, known
}

// Changed receives a value after some link's state changed.
func (w *LinkWatcher) Changed() <-chan struct{} { return w.changed }
