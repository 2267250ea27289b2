package cli

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"lockstep/db"
	"lockstep/record"
	"lockstep/sim"
	"lockstep/transcript"
)

// notRunArgs are the flags that say where or how a run is shown, not what
// it is: a recording's Args leave them out.
var notRunArgs = map[string]bool{"dsn": true, "dsn2": true, "schema": true, "record": true, "json": true, "keep": true, "theme": true}

// runArgs are the command's flags that chose the run, as arguments.
func runArgs(cmd *cobra.Command) []string {
	var args []string
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if notRunArgs[f.Name] {
			return
		}
		v := f.Value.String()
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			v = strings.Join(sv.GetSlice(), ",")
		}
		args = append(args, "--"+f.Name+"="+v)
	})
	// The positional arguments: the spec a spec run played.
	return append(args, cmd.Flags().Args()...)
}

// recordRun starts a recording of eng's run at path, or returns nil when
// path is "".
func (a *app) recordRun(path, command string, cmd *cobra.Command, eng *sim.Engine, d *db.Database, summary, expected string) (*record.Writer, error) {
	if path == "" {
		return nil, nil
	}
	cfg := eng.Config()
	run := record.Run{Name: cfg.Name(), Summary: summary, Expected: expected, RunID: string(eng.RunID()), Sessions: cfg.Sessions,
		HasLedger: cfg.HasLedger(), TwoDatabases: cfg.TwoDatabases(), Poll: cfg.Poll, DeadlockTimeout: eng.Observer().DeadlockTimeout()}
	if cfg.Scenario != nil && cfg.ScenarioName == "" && len(cmd.Flags().Args()) > 0 {
		run.Name = "scenario " + cmd.Flags().Args()[0] // a spec run's, named by its argument
	}
	if run.Summary == "" && cfg.Strategy != nil {
		run.Summary = cfg.Strategy.Summary
	}
	if cfg.DB != nil && cfg.DB2 != nil {
		run.Databases = []string{cfg.DB.Name(), cfg.DB2.Name()}
	}
	if ok, note := eng.Observer().RowLocksAvailable(); !ok {
		run.Notes = append(run.Notes, note)
	}
	w, err := record.Create(path, record.Header{Lockstep: Version, Command: command, Server: d.Describe(),
		ServerVersion: d.Version(), Run: run, Args: runArgs(cmd)})
	if err != nil {
		return nil, badInput(fmt.Errorf("--record %s: %w", path, err))
	}
	return w, nil
}

// endRecording closes a recording and says what it holds.
func (a *app) endRecording(w *record.Writer, path string) error {
	if w == nil {
		return nil
	}
	st, err := w.Close()
	if err != nil {
		return err
	}
	per := int64(0)
	if st.Events > 0 {
		per = st.Bytes / int64(st.Events)
	}
	fmt.Fprintf(a.stderr, "lockstep: recorded %d events in %s (%d bytes, %d per event; %d polls that changed nothing left out): lockstep replay %s\n",
		st.Events, path, st.Bytes, per, st.Skipped, path)
	return nil
}

// checkWritable says, before a run starts, that a recording could not be
// written at path.
func checkWritable(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return badInput(fmt.Errorf("--record %s: %w", path, err))
	}
	return f.Close()
}

// recordWatch starts a recording of a watch at path, or returns nil when
// path is "".
func (a *app) recordWatch(path, command string, cmd *cobra.Command, w *transcript.LiveWatch, d *db.Database, filter string, poll time.Duration) (*record.Writer, error) {
	if path == "" {
		return nil, nil
	}
	run := record.Run{Name: command, Summary: filter, Poll: poll, DeadlockTimeout: w.DeadlockTimeout(), Notes: w.Notes()}
	rec, err := record.Create(path, record.Header{Lockstep: Version, Command: command, Server: d.Describe(),
		ServerVersion: d.Version(), Run: run, Args: runArgs(cmd)})
	if err != nil {
		return nil, badInput(fmt.Errorf("--record %s: %w", path, err))
	}
	return rec, nil
}
