package learn

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"

	"lockstep/db"
	"lockstep/ledger"
	"lockstep/load"
	"lockstep/sim"
)

// maxAttempts bounds a transfer's retries in a chaos run, as the runner's.
const maxAttempts = 10

// Transfer runs the answer as one whole transfer, as an application
// would: its statements in turn, each \gset kept for the ones after; after
// a deadlock or a serialization failure, a rollback and the whole transfer
// again after a random pause (at most maxAttempts); after any other
// error, a rollback and the error. The chaos run's workers run it.
func (a *Answer) Transfer() load.TransferFunc {
	return func(ctx context.Context, conn *pgx.Conn, t ledger.Transfer, before func(i int)) (ledger.Result, error) {
		res := ledger.Result{Attempts: 1}
		vars := map[string]string{"from": fmt.Sprint(t.From), "to": fmt.Sprint(t.To), "amount": t.Amount.StringFixed(2)}
		for {
			err := a.runOnce(ctx, conn, vars, before)
			if err == nil {
				return res, nil
			}
			if conn.PgConn().TxStatus() != 'I' {
				if _, rerr := conn.Exec(context.WithoutCancel(ctx), "ROLLBACK"); rerr != nil {
					return res, fmt.Errorf("%w (and the rollback failed: %v)", err, rerr)
				}
			}
			switch db.SQLState(err) {
			case pgerrcode.DeadlockDetected:
				res.Deadlocks++
			case pgerrcode.SerializationFailure:
				res.SerializationFailures++
			default:
				return res, err
			}
			if res.Attempts >= maxAttempts {
				return res, fmt.Errorf("giving up after %d attempts: %w", res.Attempts, err)
			}
			ceiling := min(100*time.Millisecond, 2*time.Millisecond<<res.Attempts)
			select {
			case <-ctx.Done():
				return res, ctx.Err()
			case <-time.After(time.Duration(rand.Int64N(int64(ceiling) + 1))):
			}
			res.Attempts++
		}
	}
}

// runOnce sends the answer's statements once.
func (a *Answer) runOnce(ctx context.Context, conn *pgx.Conn, vars map[string]string, before func(i int)) error {
	s := newAnswerScript(a, vars)
	for i, st := range a.Statements {
		if before != nil {
			before(i)
		}
		sql, err := Render(st.SQL, s.vars())
		if err != nil {
			return fmt.Errorf("statement %d: %w", i+1, err)
		}
		results, err := conn.PgConn().Exec(ctx, sql).ReadAll()
		if err != nil {
			return err
		}
		var rs []sim.Result
		for _, r := range results {
			sr := sim.Result{}
			if r.FieldDescriptions != nil {
				for _, f := range r.FieldDescriptions {
					sr.Columns = append(sr.Columns, f.Name)
				}
				for _, row := range r.Rows {
					cells := make([]string, len(row))
					var null []bool
					for j, v := range row {
						cells[j] = string(v)
						if v == nil {
							if null == nil {
								null = make([]bool, len(row))
							}
							null[j] = true
						}
					}
					sr.Rows = append(sr.Rows, cells)
					sr.Null = append(sr.Null, null)
				}
				if slices.IndexFunc(sr.Null, func(b []bool) bool { return b != nil }) < 0 {
					sr.Null = nil
				}
			}
			rs = append(rs, sr)
		}
		if err := s.RecordResults(i, rs); err != nil {
			return fmt.Errorf("statement %d: %w", i+1, err)
		}
	}
	return nil
}
