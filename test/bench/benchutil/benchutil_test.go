package benchutil

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    int
		want float64
	}{{0, 1}, {1, 1}, {50, 50}, {95, 95}, {99, 99}, {100, 100}} {
		if got := PercentileMS(d, c.p); got != c.want {
			t.Errorf("PercentileMS(1..100 ms, %d) = %v, want %v", c.p, got, c.want)
		}
	}
	if d[0] != 100*time.Millisecond {
		t.Errorf("Percentile sorted its argument: d[0] = %v", d[0])
	}
	if got := Percentile([]time.Duration{7}, 50); got != 7 {
		t.Errorf("Percentile of one sample = %v, want 7ns", got)
	}
	if got := MS(1500 * time.Microsecond); got != 1.5 {
		t.Errorf("MS(1.5ms) = %v", got)
	}
}

func TestLeftoversRemoveLastFirstOnce(t *testing.T) {
	var l Leftovers
	var order []int
	for i := range 3 {
		l.Add(func() { order = append(order, i) })
	}
	dir, err := l.TempDir(t.TempDir(), "left-")
	if err != nil {
		t.Fatal(err)
	}
	l.Add(func() {
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("the directory made before this was removed first: %v", err)
		}
	})
	l.Remove()
	l.Remove()
	if want := []int{2, 1, 0}; !slices.Equal(order, want) {
		t.Errorf("removed in order %v, want %v (each once)", order, want)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("TempDir %s is still there: %v", filepath.Base(dir), err)
	}
}

func TestWriteJSON(t *testing.T) {
	if err := WriteJSON("", map[string]float64{"x": 1}); err != nil {
		t.Errorf("WriteJSON to no file: %v", err)
	}
	path := filepath.Join(t.TempDir(), "f.json")
	if err := WriteJSON(path, map[string]float64{"k": 50}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := "{\n  \"k\": 50\n}\n"; string(b) != want {
		t.Errorf("WriteJSON wrote %q, want %q", b, want)
	}
}
