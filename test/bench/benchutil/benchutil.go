// Package benchutil is what the benchmark programs under test/bench share: the
// percentiles of their samples, the leftovers each must remove however it ends,
// and the JSON file of their figures.
package benchutil

import (
	"encoding/json"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"
)

// Percentile returns the p-th percentile (nearest rank) of d, which must not be
// empty.
func Percentile(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	if i > 0 {
		i--
	}
	return s[i]
}

// MS is d in milliseconds, to the microsecond.
func MS(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// PercentileMS is Percentile in milliseconds.
func PercentileMS(d []time.Duration, p int) float64 { return MS(Percentile(d, p)) }

// Leftovers are what a benchmark made and must remove (namespaces, directories,
// processes): at its end, and on SIGINT or SIGTERM before. Safe for concurrent
// use.
type Leftovers struct {
	mu   sync.Mutex
	undo []func()
}

// Add records how to remove one thing made.
func (l *Leftovers) Add(undo func()) {
	l.mu.Lock()
	l.undo = append(l.undo, undo)
	l.mu.Unlock()
}

// TempDir makes a directory as os.MkdirTemp does, and records its removal.
func (l *Leftovers) TempDir(parent, pattern string) (string, error) {
	d, err := os.MkdirTemp(parent, pattern)
	if err == nil {
		l.Add(func() { _ = os.RemoveAll(d) })
	}
	return d, err
}

// Remove removes everything recorded, the last made first.
func (l *Leftovers) Remove() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.remove()
}

func (l *Leftovers) remove() {
	for i := len(l.undo) - 1; i >= 0; i-- {
		l.undo[i]()
	}
	l.undo = nil
}

// RemoveOnSignal removes everything recorded so far and exits with status 130
// when the process gets SIGINT or SIGTERM.
func (l *Leftovers) RemoveOnSignal() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		l.mu.Lock() // and keep it: nothing more is made
		l.remove()
		os.Exit(130)
	}()
}

// WriteJSON writes v as indented JSON to the file path; nothing when path is "".
func WriteJSON(path string, v any) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
