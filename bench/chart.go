package bench

import (
	"fmt"
	"image/color"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// pathColors gives each path the same colour in every panel.
var pathColors = map[string]color.Color{
	PathDirect:      color.RGBA{R: 0x4c, G: 0x72, B: 0xb0, A: 0xff},
	PathHAProxy:     color.RGBA{R: 0xdd, G: 0x84, B: 0x52, A: 0xff},
	PathTrellis:     color.RGBA{R: 0x55, G: 0xa8, B: 0x68, A: 0xff},
	PathTrellisMTLS: color.RGBA{R: 0xc4, G: 0x4e, B: 0x52, A: 0xff},
	PathTrellisH2:   color.RGBA{R: 0x81, G: 0x72, B: 0xb3, A: 0xff},
}

// writeChart draws the latency percentiles of every measured path as grouped bars,
// one panel per workload, and stores the picture as a PNG.
func (rep *Report) writeChart(file string) error {
	var rows [][]*plot.Plot
	for _, wl := range rep.workloads() {
		p, err := rep.latencyPlot(wl)
		if err != nil {
			return fmt.Errorf("drawing the %s chart: %w", wl, err)
		}
		rows = append(rows, []*plot.Plot{p})
	}
	if len(rows) == 0 {
		return nil
	}
	const width, rowHeight = 20 * vg.Centimeter, 8 * vg.Centimeter
	img := vgimg.NewWith(vgimg.UseWH(width, rowHeight*vg.Length(len(rows))), vgimg.UseDPI(110))
	dc := draw.New(img)
	// A white background; vgimg starts transparent.
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	tiles := draw.Tiles{Rows: len(rows), Cols: 1, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2,
		PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2, PadY: vg.Millimeter * 4}
	canvases := plot.Align(rows, tiles, dc)
	for i, row := range rows {
		row[0].Draw(canvases[i][0])
	}
	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("writing the chart: %w", err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("writing the chart: %w", err)
	}
	return f.Close()
}

// latencyPlot is one workload's panel: p50, p90, p99 and p99.9 per path.
func (rep *Report) latencyPlot(wl string) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = workloadTitle(wl, rep.Settings)
	p.Y.Label.Text = "latency (ms)"
	p.Y.Min = 0
	p.NominalX("p50", "p90", "p99", "p99.9")
	p.Legend.Top = true
	p.Legend.Left = true

	var results []Result
	for _, r := range rep.Results {
		if r.Workload == wl && r.measured() {
			results = append(results, r)
		}
	}
	const barWidth = 8 * vg.Millimeter
	top := 0.0
	for i, r := range results {
		top = max(top, r.LatencyMs.P999)
		bars, err := plotter.NewBarChart(plotter.Values(r.LatencyMs.values()), barWidth)
		if err != nil {
			return nil, err
		}
		bars.LineStyle.Width = 0
		bars.Color = pathColors[r.Path]
		bars.Offset = barWidth * (vg.Length(i) - vg.Length(len(results)-1)/2)
		p.Add(bars)
		p.Legend.Add(r.Path, bars)
	}
	// Headroom above the bars for the legend.
	p.Y.Max = top * 1.3
	return p, nil
}
