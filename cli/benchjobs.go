package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/charmbracelet/x/ansi"
	"github.com/guptarohit/asciigraph"

	"lockstep/load"
)

// benchJobs runs the job-queue workload: each way of taking the next job
// (FOR UPDATE, NOWAIT, SKIP LOCKED) at each worker count.
func (b *benchRun) benchJobs(ctx context.Context) error {
	var results []load.JobResult
	for _, mode := range load.JobModes {
		for _, w := range b.f.ws {
			fmt.Fprintf(b.progress, "bench job-queue %s, %d workers…\n", mode, w)
			r, err := load.JobQueue(ctx, load.JobConfig{DB: b.d, Mode: mode, Workers: w, Duration: b.f.duration})
			if err != nil {
				return fmt.Errorf("bench job-queue %s, %d workers: %w", mode, w, err)
			}
			results = append(results, r)
			if b.f.asJSON {
				_ = json.NewEncoder(b.out).Encode(r)
			}
		}
	}
	if b.f.asJSON {
		return nil
	}
	printJobTable(b.out, results)
	printJobChart(b.out, results, b.f.ws, isColourTerminal(b.out))
	return nil
}

func printJobTable(w io.Writer, rs []load.JobResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "take next job with\tworkers\tjobs/s\tp50 ms\tp99 ms\t55P03 errors\tfound none\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.2f\t%.2f\t%d\t%d\t\n", load.JobClause(r.Mode), r.Workers, r.Throughput, r.P50ms, r.P99ms, r.LockErrors, r.Empty)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nFOR UPDATE: the workers queue for the same first job and run one after the other; NOWAIT: they fail\n"+
		"(55P03) instead of waiting and must retry; SKIP LOCKED: each takes a job nobody holds, side by side.")
}

func printJobChart(w io.Writer, rs []load.JobResult, workers []int, colour bool) {
	if len(workers) < 2 {
		return
	}
	var series [][]float64
	var names []string
	for _, mode := range load.JobModes {
		var line []float64
		for _, wk := range workers {
			for _, r := range rs {
				if r.Mode == mode && r.Workers == wk {
					line = append(line, r.Throughput)
				}
			}
		}
		series = append(series, line)
		names = append(names, load.JobClause(mode))
	}
	var ws []string
	for _, wk := range workers {
		ws = append(ws, strconv.Itoa(wk))
	}
	opts := []asciigraph.Option{asciigraph.Height(12), asciigraph.Width(60),
		asciigraph.Caption(fmt.Sprintf("jobs/s against workers (%s)", strings.Join(ws, ", "))),
		asciigraph.SeriesLegends(names...)}
	if colour {
		opts = append(opts, asciigraph.SeriesColors(asciigraph.Red, asciigraph.Yellow, asciigraph.Green))
	}
	chart := asciigraph.PlotMany(series, opts...)
	if !colour {
		chart = ansi.Strip(chart)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, chart)
}
