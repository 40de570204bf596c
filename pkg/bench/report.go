package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
)

// WriteTable writes the sweep as a table: SIZE, Gbps, sender and receiver CPU %.
func (r *Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "SIZE\tGbps\tSENDER CPU %\tRECEIVER CPU %\t")
	for _, p := range r.Points {
		fmt.Fprintf(tw, "%s\t%.2f\t%.1f\t%.1f\t\n", SizeLabel(p.Size), p.Gbps, p.SenderCPU, p.ReceiverCPU)
	}
	return tw.Flush()
}

// WriteJSON writes the sweep's JSON to file.
func (r *Result) WriteJSON(file string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(file, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}
