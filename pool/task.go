package pool

import (
	"context"
	"fmt"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"lockstep/db"
)

// The ledger SQL a task runs, the same in both databases. Task Ti moves 1.00
// from account 2i-1 to account 2i: every task has rows of its own, so no
// task ever waits for another's row lock — the only waiting in this
// scenario is for pool connections.
const (
	sqlInsertTransfer = `INSERT INTO transfers (from_account_id, to_account_id, amount) VALUES ($1, $2, 1.00) RETURNING id`
	sqlInsertEntries  = `INSERT INTO entries (transfer_id, account_id, amount) VALUES ($1, $2, -1.00), ($1, $3, 1.00)`
	sqlDebit          = `UPDATE accounts SET balance = balance - 1.00 WHERE id = $1`
	sqlCredit         = `UPDATE accounts SET balance = balance + 1.00 WHERE id = $1`
	sqlCountAccounts  = `SELECT count(*) FROM accounts WHERE id BETWEEN 1 AND $1`
)

// accountsOf is task i's pair of accounts (i from 0).
func accountsOf(i int) (from, to int64) { return int64(2*i + 1), int64(2*i + 2) }

// transfer writes one transfer of 1.00 in tx.
func transfer(ctx context.Context, tx pgx.Tx, from, to int64) error {
	var id int64
	if err := tx.QueryRow(ctx, sqlInsertTransfer, from, to).Scan(&id); err != nil {
		return fmt.Errorf("inserting the transfer: %w", err)
	}
	if _, err := tx.Exec(ctx, sqlInsertEntries, id, from, to); err != nil {
		return fmt.Errorf("inserting the entries: %w", err)
	}
	for _, u := range []struct {
		sql string
		id  int64
	}{{sqlDebit, from}, {sqlCredit, to}} {
		tag, err := tx.Exec(ctx, u.sql, u.id)
		if err != nil {
			return fmt.Errorf("updating account %d: %w", u.id, err)
		}
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("updating account %d: no such account", u.id)
		}
	}
	return nil
}

// write begins a transaction on conn, in database db, and records the
// transfer in it. The transaction is returned even when the writing fails,
// for the task's end to roll back.
func write(ctx context.Context, conn *pgxpool.Conn, db string, from, to int64) (pgx.Tx, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("BEGIN in %s: %w", db, err)
	}
	if err := transfer(ctx, tx, from, to); err != nil {
		return tx, fmt.Errorf("writing in %s: %w", db, err)
	}
	return tx, nil
}

// checkLedger makes sure database d (labelled A or B) has the accounts the
// tasks move money between, on a connection of its own that is closed at
// once, so that the pools' statistics count only the tasks.
func checkLedger(ctx context.Context, d *db.Database, label, app string, need int) error {
	what := fmt.Sprintf("database %s (%s)", label, d.Name())
	conn, err := d.Connect(ctx, app)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer db.CloseConn(ctx, conn)
	var have int
	if err := conn.QueryRow(ctx, sqlCountAccounts, need).Scan(&have); err != nil {
		if db.SQLState(err) == pgerrcode.UndefinedTable {
			return fmt.Errorf("%s has no ledger in schema %s: reset it first", what, d.Schema())
		}
		return fmt.Errorf("%s: counting accounts: %w", what, err)
	}
	if have < need {
		return fmt.Errorf("%s: the tasks need accounts 1..%d (task Ti moves 1.00 from account 2i-1 to 2i) but only %d of them exist: reset with --accounts %d", what, need, have, need)
	}
	return nil
}

// taskRun is one task's connections and transactions.
type taskRun struct {
	r            *run
	i            int
	state        TaskState
	connA, connB *pgxpool.Conn
	txA, txB     pgx.Tx
	turn, permit bool // holds the UpFront turn, a Semaphore permit
	committedA   bool
	committedB   bool
}

// task runs task i to its end and reports its final phase. A failure ends
// the whole run (the other tasks would wait at the barrier for it forever).
func (r *run) task(ctx context.Context, i int) error {
	t := &taskRun{r: r, i: i, state: TaskState{Name: taskName(i)}}
	return t.finish(ctx, t.work(ctx))
}

// set reports the task's new phase to the monitor, and what it holds.
// The send is unbuffered: the monitor knows the phase before the task acts
// on it, which is what lets it trust a "waiting" phase.
func (t *taskRun) set(p Phase) {
	t.state.Phase = p
	t.state.HoldsA, t.state.HoldsB = t.connA != nil, t.connB != nil
	t.r.updates <- update{task: t.i, state: t.state}
}

func (t *taskRun) work(ctx context.Context) error {
	r := t.r
	switch r.cfg.Fix {
	case Semaphore:
		t.set(PhaseWaitPermit)
		if err := r.sem.Acquire(ctx, 1); err != nil {
			return fmt.Errorf("waiting for a permit: %w", err)
		}
		t.permit = true
	case UpFront:
		t.set(PhaseWaitTurn)
		select {
		case r.turn <- struct{}{}:
			t.turn = true
		case <-ctx.Done():
			return fmt.Errorf("waiting for its turn: %w", ctx.Err())
		}
	}
	if err := t.take(ctx, targetA); err != nil {
		return err
	}
	if r.cfg.Fix == UpFront {
		if err := t.take(ctx, targetB); err != nil {
			return err
		}
		t.endTurn()
	}
	from, to := accountsOf(t.i)

	t.set(PhaseWriteA)
	var err error
	if t.txA, err = write(ctx, t.connA, "A", from, to); err != nil {
		return err
	}

	t.set(PhaseBarrier)
	if err := r.barrier.wait(ctx); err != nil {
		return fmt.Errorf("waiting for the other tasks: %w", err)
	}

	if r.cfg.Fix != UpFront {
		if err := t.take(ctx, targetB); err != nil {
			return err
		}
	}
	t.set(PhaseWriteB)
	if t.txB, err = write(ctx, t.connB, "B", from, to); err != nil {
		return err
	}

	t.set(PhaseCommit)
	if err := t.txB.Commit(ctx); err != nil {
		return fmt.Errorf("COMMIT in B: %w", err)
	}
	t.committedB = true
	if err := t.txA.Commit(ctx); err != nil {
		return fmt.Errorf("COMMIT in A: %w", err)
	}
	t.committedA = true
	return nil
}

// take acquires the connection for database tg from the pool serving it.
func (t *taskRun) take(ctx context.Context, tg target) error {
	phase := PhaseWaitA
	if tg == targetB {
		phase = PhaseWaitB
	}
	t.set(phase)
	c, err := t.r.byDB[tg].acquire(ctx, tg)
	if err != nil {
		return fmt.Errorf("acquiring for %s: %w", tg, err)
	}
	if tg == targetA {
		t.connA = c
	} else {
		t.connB = c
	}
	return nil
}

func (t *taskRun) endTurn() {
	if t.turn {
		<-t.r.turn
		t.turn = false
	}
}

// finish rolls back whatever is open, releases both connections, reports
// the task's final phase and gives back the turn and the permit. err is
// what work returned.
func (t *taskRun) finish(ctx context.Context, err error) error {
	// The run's context may be the reason the task is ending; the ROLLBACKs
	// must still reach the server.
	cctx, cancel := db.Cleanup(ctx)
	defer cancel()
	// A failed ROLLBACK makes pgx close the connection, and the server
	// aborts a transaction whose connection ends: either way it is gone.
	if t.txB != nil && !t.committedB {
		_ = t.txB.Rollback(cctx)
	}
	if t.txA != nil && !t.committedA {
		_ = t.txA.Rollback(cctx)
	}
	if t.connB != nil {
		t.connB.Release()
		t.connB = nil
	}
	if t.connA != nil {
		t.connA.Release()
		t.connA = nil
	}

	phase := PhaseCommitted
	switch {
	case err == nil:
	case t.committedB:
		// The two databases now disagree: worth an error even when the run
		// was being ended.
		phase = PhaseFailed
		err = fmt.Errorf("committed in B but not in A: %w", err)
	case ctx.Err() != nil:
		// The run was ended (exhaustion, another task's failure, or the
		// caller): this task's error is only the cancellation.
		phase, err = PhaseRolledBack, nil
	default:
		phase = PhaseFailed
	}
	if phase == PhaseFailed {
		t.state.Err = err // shown after the task's name
		err = fmt.Errorf("task %s: %w", t.state.Name, err)
		t.r.cancel()
	}
	t.set(phase)
	// The turn and the permit go back only after the final phase is
	// reported, so that no event shows more tasks holding connections than
	// the fix allows.
	t.endTurn()
	if t.permit {
		t.r.sem.Release(1)
		t.permit = false
	}
	return err
}
