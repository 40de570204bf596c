package main

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/chelsio-k8s/chelsio-sriov/test/bench/benchutil"
)

// series is one plugin's K sequential ADD and DEL durations, for the plot.
type series struct {
	name string
	s    sample
}

// wave is the per-operation durations of N operations started at once.
type wave struct {
	n    int
	cmd  string
	durs []time.Duration
}

var (
	addColor = color.RGBA{R: 0x1f, G: 0x4e, B: 0x9c, A: 0xff}
	delColor = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
	gray     = color.RGBA{R: 0x70, G: 0x70, B: 0x70, A: 0xff}
)

// plotFile draws the figures that a table cannot show: on the left the spread of
// the sequential ADD and DEL durations of each plugin (box: quartiles, whiskers:
// the rest but outliers); on the right, for each wave of N pods at once, when each
// operation finished, against the line of N moves one after the other at the
// single-pod median: moves serialize in the kernel, so the closer to that line,
// the less the plugin adds.
func (b *bench) plotFile(file string) error {
	format := strings.TrimPrefix(strings.ToLower(filepath.Ext(file)), ".")
	if format != "svg" && format != "png" {
		return fmt.Errorf("plot %s: want a .svg or .png file name", file)
	}
	left := plot.New()
	left.Title.Text = fmt.Sprintf("One pod at a time: %d ADD+DEL cycles each", b.k)
	left.Y.Label.Text = "ms"
	left.Y.Min = 0
	left.Add(plotter.NewGrid())
	var names []string
	const w = vg.Length(14)
	for i, sr := range b.series {
		for j, d := range [][]time.Duration{sr.s.add, sr.s.del} {
			if len(d) == 0 {
				continue
			}
			box, err := plotter.NewBoxPlot(w, float64(i)+0.22*float64(2*j-1), msValues(d))
			if err != nil {
				return fmt.Errorf("plot %s: %w", file, err)
			}
			box.FillColor = []color.Color{addColor, delColor}[j]
			box.BoxStyle.Color, box.MedianStyle.Color = gray, color.White
			box.WhiskerStyle.Color, box.CapWidth = gray, w/2
			left.Add(box)
			if i == 0 {
				left.Legend.Add([]string{"ADD", "DEL"}[j], swatch{box.FillColor})
			}
		}
		names = append(names, strings.ReplaceAll(sr.name, ", ", "\n"))
	}
	left.NominalX(names...)
	left.Legend.Top = true
	left.Y.Max *= 1.15

	right := plot.New()
	right.Title.Text = "N pods at once: each operation's finish"
	right.X.Label.Text = "operations finished"
	right.Y.Label.Text = "ms since the wave started"
	right.Add(plotter.NewGrid())
	right.Legend.Top, right.Legend.Left = true, true
	maxN := 0
	for _, wv := range b.waves {
		d := slices.Clone(wv.durs)
		slices.Sort(d)
		xys := make(plotter.XYs, len(d))
		for i, v := range d {
			xys[i] = plotter.XY{X: float64(i + 1), Y: benchutil.MS(v)}
		}
		line, err := plotter.NewLine(xys)
		if err != nil {
			return fmt.Errorf("plot %s: %w", file, err)
		}
		line.Color = map[string]color.Color{"ADD": addColor, "DEL": delColor}[wv.cmd]
		if wv.n != slices.Max(b.waveSizes()) {
			line.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		}
		right.Add(line)
		right.Legend.Add(fmt.Sprintf("%d %ss", wv.n, wv.cmd), line)
		maxN = max(maxN, wv.n)
	}
	if single := b.res["add_median_ms"]; single > 0 && maxN > 0 {
		ideal, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: float64(maxN), Y: float64(maxN) * single}})
		if err != nil {
			return fmt.Errorf("plot %s: %w", file, err)
		}
		ideal.Color, ideal.Dashes = gray, []vg.Length{vg.Points(1), vg.Points(3)}
		right.Add(ideal)
		right.Legend.Add(fmt.Sprintf("N × single ADD p50 (%.1f ms)", single), ideal)
	}
	right.X.Min, right.Y.Min = 0, 0

	cw, err := draw.NewFormattedCanvas(13*vg.Inch, 5.5*vg.Inch, format)
	if err != nil {
		return fmt.Errorf("plot %s: %w", file, err)
	}
	plots := [][]*plot.Plot{{left, right}}
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: 8 * vg.Millimeter, PadTop: 2 * vg.Millimeter, PadBottom: 2 * vg.Millimeter, PadLeft: 2 * vg.Millimeter, PadRight: 4 * vg.Millimeter}
	canvases := plot.Align(plots, tiles, draw.New(cw))
	left.Draw(canvases[0][0])
	right.Draw(canvases[0][1])
	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	if _, err := cw.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("plot %s: %w", file, err)
	}
	return f.Close()
}

// swatch is a legend entry: a filled square of the boxes' colour.
type swatch struct{ c color.Color }

func (s swatch) Thumbnail(c *draw.Canvas) {
	c.FillPolygon(s.c, c.ClipPolygonY([]vg.Point{{X: c.Min.X, Y: c.Min.Y}, {X: c.Max.X, Y: c.Min.Y}, {X: c.Max.X, Y: c.Max.Y}, {X: c.Min.X, Y: c.Max.Y}}))
}

func (b *bench) waveSizes() []int {
	var n []int
	for _, w := range b.waves {
		n = append(n, w.n)
	}
	return n
}

func msValues(d []time.Duration) plotter.Values {
	v := make(plotter.Values, len(d))
	for i, x := range d {
		v[i] = benchutil.MS(x)
	}
	return v
}
