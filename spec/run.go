package spec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"lockstep/db"
	"lockstep/locks"
)

// Runner runs a spec's permutations on real sessions and prints what
// happens in the format of PostgreSQL's isolation tester (expected/*.out).
type Runner struct {
	DB  *db.Database
	Out io.Writer
	// RunID names the sessions lockstep/<RunID>/T1 …; empty means "spec".
	RunID string
	// StuckAfter is how long every running step may wait, as the server
	// says, with no deadlock the server could break, before the runner
	// declares the permutation stuck and cancels a step; zero means 2s.
	StuckAfter time.Duration

	outMu sync.Mutex
}

func (r *Runner) printf(format string, args ...any) {
	r.outMu.Lock()
	defer r.outMu.Unlock()
	fmt.Fprintf(r.Out, format, args...)
}

// ErrSetupFailed is returned when a setup block fails; the output says why.
var ErrSetupFailed = errors.New("setup failed")

// Run prints the header and runs the permutations: the spec's own, or every
// interleaving when it lists none; only permutation k (1-based) when k > 0.
func (r *Runner) Run(ctx context.Context, s *Spec, k int) error {
	perms := s.runPermutations()
	if k > len(perms) || k < 0 {
		return fmt.Errorf("--permutation %d: the spec has %d permutations", k, len(perms))
	}
	if k > 0 {
		perms = perms[k-1 : k]
	}
	r.printf("Parsed test spec with %d sessions\n", len(s.Sessions))
	for _, p := range perms {
		if err := r.runPermutation(ctx, s, p); err != nil {
			return err
		}
	}
	return nil
}

// runPermutations are the permutations a run plays: the listed ones, or
// every interleaving when none is listed.
func (s *Spec) runPermutations() []Permutation {
	if len(s.Permutations) > 0 {
		return s.Permutations
	}
	var perms []Permutation
	for _, steps := range s.AllPermutations() {
		var p Permutation
		for _, st := range steps {
			p.Steps = append(p.Steps, PermutationStep{Step: st})
		}
		perms = append(perms, p)
	}
	return perms
}

// NumPermutations is how many permutations a run plays.
func (s *Spec) NumPermutations() int { return len(s.runPermutations()) }

// session is one spec session's connection and what it is doing.
type session struct {
	spec    *Session
	name    string // the observer's name for it: T1, T2, …
	conn    *pgx.Conn
	active  *active
	notices atomic.Int64
}

// active is a step sent to the server whose completion is not yet printed.
type active struct {
	ps      PermutationStep
	sess    *session
	done    chan []*pgconn.Result // the results, once the server answered
	res     []*pgconn.Result
	target  map[*Session]int64 // notices blockers: counts to reach
	waiting bool               // " <waiting ...>" has been printed
}

func (r *Runner) runPermutation(ctx context.Context, s *Spec, p Permutation) (err error) {
	var names []string
	for _, ps := range p.Steps {
		names = append(names, ps.Step.Name)
	}
	r.printf("\nstarting permutation: %s\n", strings.Join(names, " "))
	runID := r.RunID
	if runID == "" {
		runID = "spec"
	}
	d := r.DB.WithoutSchema()
	control, err := d.Connect(ctx, locks.SessionAppName(runID, "control"))
	if err != nil {
		return err
	}
	defer control.Close(context.WithoutCancel(ctx))
	obsConn, err := d.Connect(ctx, locks.SessionAppName(runID, "observer"))
	if err != nil {
		return err
	}
	defer obsConn.Close(context.WithoutCancel(ctx))
	obs, err := locks.NewObserver(ctx, obsConn, runID, "public", locks.WithoutRowLocks())
	if err != nil {
		return err
	}
	for _, sql := range s.Setup {
		if msg, ok := r.execBlock(ctx, control, sql); !ok {
			r.printf("setup failed: %s", msg)
			return ErrSetupFailed
		}
	}
	bySpec := map[*Session]*session{}
	var sessions []*session
	defer func() {
		for _, se := range sessions {
			if se.active != nil {
				// A step still running (after an error): end it with its session.
				_, _ = control.Exec(context.WithoutCancel(ctx), "SELECT pg_cancel_backend($1)", int32(se.conn.PgConn().PID()))
				<-se.active.done
			}
			se.conn.Close(context.WithoutCancel(ctx))
		}
	}()
	for i, ss := range s.Sessions {
		se := &session{spec: ss, name: fmt.Sprintf("T%d", i+1)}
		cfg := d.ConnConfig(locks.SessionAppName(runID, se.name))
		cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
			se.notices.Add(1)
			r.printf("%s: %s", ss.Name, formatNotice(n))
		}
		if se.conn, err = pgx.ConnectConfig(ctx, cfg); err != nil {
			return fmt.Errorf("connecting session %s: %w", ss.Name, err)
		}
		sessions = append(sessions, se)
		bySpec[ss] = se
	}
	for _, se := range sessions {
		if se.spec.Setup == "" {
			continue
		}
		if msg, ok := r.execBlock(ctx, se.conn, se.spec.Setup); !ok {
			r.printf("setup of session %s failed: %s", se.spec.Name, msg)
			return ErrSetupFailed
		}
	}
	pr := &permRun{r: r, ctx: ctx, control: control, obs: obs, bySpec: bySpec, sessions: sessions}
	if err := pr.steps(p); err != nil {
		return err
	}
	for _, se := range sessions {
		if se.spec.Teardown == "" {
			continue
		}
		if msg, ok := r.execBlock(ctx, se.conn, se.spec.Teardown); !ok {
			r.printf("teardown of session %s failed: %s", se.spec.Name, msg)
		}
	}
	if s.Teardown != "" {
		if msg, ok := r.execBlock(ctx, control, s.Teardown); !ok {
			r.printf("teardown failed: %s", msg)
		}
	}
	return nil
}

// execBlock runs a setup or teardown block as one submission and prints the
// last result's rows, as PQexec would leave them; on failure it returns the
// error as libpq words it.
func (r *Runner) execBlock(ctx context.Context, conn *pgx.Conn, sql string) (string, bool) {
	results, err := conn.PgConn().Exec(ctx, sql).ReadAll()
	if err != nil {
		return errorMessage(err), false
	}
	if n := len(results); n > 0 {
		r.printResult(results[n-1])
	}
	return "", true
}

func errorMessage(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		msg := pgErr.Severity + ":  " + pgErr.Message + "\n"
		if pgErr.Detail != "" {
			msg += "DETAIL:  " + pgErr.Detail + "\n"
		}
		return msg
	}
	return err.Error() + "\n"
}

func formatNotice(n *pgconn.Notice) string {
	msg := n.Severity + ":  " + n.Message + "\n"
	if n.Detail != "" {
		msg += "DETAIL:  " + n.Detail + "\n"
	}
	if n.Hint != "" {
		msg += "HINT:  " + n.Hint + "\n"
	}
	return msg
}

func (r *Runner) printResult(res *pgconn.Result) {
	if res.Err != nil {
		var pgErr *pgconn.PgError
		if errors.As(res.Err, &pgErr) {
			// Only the primary message: a DETAIL may hold transaction ids.
			r.printf("%s:  %s\n", pgErr.Severity, pgErr.Message)
		} else {
			r.printf("%s\n", res.Err)
		}
		return
	}
	if len(res.FieldDescriptions) == 0 {
		return
	}
	cols := make([]string, len(res.FieldDescriptions))
	for i, f := range res.FieldDescriptions {
		cols[i] = f.Name
	}
	rows := make([][]string, len(res.Rows))
	nulls := make([][]bool, len(res.Rows))
	for i, row := range res.Rows {
		rows[i] = make([]string, len(row))
		nulls[i] = make([]bool, len(row))
		for j, v := range row {
			rows[i][j], nulls[i][j] = string(v), v == nil
		}
	}
	r.outMu.Lock()
	WriteResultSet(r.Out, cols, rows, nulls)
	r.outMu.Unlock()
}
