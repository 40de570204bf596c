package bench

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Plot writes the sweep as a figure shaped like the seed's Figure 1, in the format
// file's extension names (.svg or .png): two panels over one log₂ I/O-size axis
// (64, 128, …, 512K), throughput in Gbps above and host CPU % of the sender and
// the receiver below. gonum/plot has no second y axis; two panels with their own
// axes read better than CPU % rescaled onto the Gbps axis.
func (r *Result) Plot(file string) (retErr error) {
	format := strings.TrimPrefix(strings.ToLower(filepath.Ext(file)), ".")
	if format != "svg" && format != "png" {
		return fmt.Errorf("plot %s: want a .svg or .png file name", file)
	}
	if len(r.Points) == 0 {
		return fmt.Errorf("plot %s: no points", file)
	}
	gbps, sender, receiver := make(plotter.XYs, len(r.Points)), make(plotter.XYs, len(r.Points)), make(plotter.XYs, len(r.Points))
	lo, hi := math.Inf(1), math.Inf(-1)
	for i, p := range r.Points {
		x := float64(p.Size)
		lo, hi = math.Min(lo, x), math.Max(hi, x)
		gbps[i] = plotter.XY{X: x, Y: p.Gbps}
		sender[i] = plotter.XY{X: x, Y: p.SenderCPU}
		receiver[i] = plotter.XY{X: x, Y: p.ReceiverCPU}
	}

	top := plot.New()
	top.Title.Text = fmt.Sprintf("chelsio-vf bench: %d streams, %s per size", r.Streams, r.Duration)
	top.Y.Label.Text = "Throughput (Gbps)"
	top.Y.Min = 0
	bottom := plot.New()
	bottom.X.Label.Text = "I/O size (bytes)"
	bottom.Y.Label.Text = "Host CPU (%)"
	// 100 % is the top tick; the band above it holds the legend.
	bottom.Y.Min, bottom.Y.Max = 0, 125
	bottom.Y.Tick.Marker = plot.ConstantTicks([]plot.Tick{{Value: 0, Label: "0"}, {Value: 25, Label: "25"}, {Value: 50, Label: "50"}, {Value: 75, Label: "75"}, {Value: 100, Label: "100"}})
	for _, p := range []*plot.Plot{top, bottom} {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = sizeTicks{}
		p.X.Min, p.X.Max = lo/math.Sqrt2, hi*math.Sqrt2
		p.Add(plotter.NewGrid())
		p.Legend.Top = true
	}

	if err := addSeries(top, gbps, "Throughput (Gbps)", color.RGBA{R: 0x1f, G: 0x4e, B: 0x9c, A: 0xff}, draw.CircleGlyph{}); err != nil {
		return fmt.Errorf("plot %s: %w", file, err)
	}
	if err := addSeries(bottom, sender, "Sender host CPU %", color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, draw.SquareGlyph{}); err != nil {
		return fmt.Errorf("plot %s: %w", file, err)
	}
	if err := addSeries(bottom, receiver, "Receiver host CPU %", color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}, draw.TriangleGlyph{}); err != nil {
		return fmt.Errorf("plot %s: %w", file, err)
	}
	// Leave a band above the highest point for the legend.
	top.Y.Max = math.Max(top.Y.Max*1.3, 1)

	const w, h = 8 * vg.Inch, 6 * vg.Inch
	cw, err := draw.NewFormattedCanvas(w, h, format)
	if err != nil {
		return fmt.Errorf("plot %s: %w", file, err)
	}
	tiles := draw.Tiles{
		Rows: 2, Cols: 1, PadX: vg.Millimeter, PadY: 4 * vg.Millimeter,
		PadTop: 2 * vg.Millimeter, PadBottom: 2 * vg.Millimeter, PadLeft: 2 * vg.Millimeter, PadRight: 4 * vg.Millimeter,
	}
	plots := [][]*plot.Plot{{top}, {bottom}}
	canvases := plot.Align(plots, tiles, draw.New(cw))
	for j := range plots {
		plots[j][0].Draw(canvases[j][0])
	}

	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	defer func() {
		if err := f.Close(); err != nil && retErr == nil {
			retErr = fmt.Errorf("plot: %w", err)
		}
	}()
	if _, err := cw.WriteTo(f); err != nil {
		return fmt.Errorf("plot %s: %w", file, err)
	}
	return nil
}

func addSeries(p *plot.Plot, xys plotter.XYs, name string, c color.Color, g draw.GlyphDrawer) error {
	l, s, err := plotter.NewLinePoints(xys)
	if err != nil {
		return err
	}
	l.Color = c
	l.Width = vg.Points(1.5)
	s.Color = c
	s.Shape = g
	s.Radius = vg.Points(3)
	p.Add(l, s)
	p.Legend.Add(name, l, s)
	return nil
}

// sizeTicks labels every power of two in range as the seed's figure does: 64,
// 128, …, 1K, …, 512K.
type sizeTicks struct{}

// Ticks implements plot.Ticker.
func (sizeTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for e := 0; e < 40; e++ {
		v := math.Ldexp(1, e)
		if v < lo || v > hi {
			continue
		}
		ticks = append(ticks, plot.Tick{Value: v, Label: SizeLabel(int(v))})
	}
	return ticks
}
