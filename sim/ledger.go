package sim

import (
	"context"
	"errors"
	"fmt"
	"time"

	"lockstep/ledger"
)

// Books reads the balances and checks the books on the control connection,
// outside every session's transaction. While a session holds the accounts
// table exclusively it fails at once with ErrLedgerLocked rather than wait.
func (e *Engine) Books(ctx context.Context) ([]ledger.Account, ledger.Books, error) {
	if e.cfg.Scenario != nil {
		return nil, ledger.Books{}, ErrNoLedger
	}
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	accounts, err := e.sides[0].accounts(ctx)
	if err != nil {
		return nil, ledger.Books{}, err
	}
	books, err := e.sides[0].books(ctx)
	return accounts, books, err
}

// Balances reads the ledger's accounts in every database of a two-database
// run, by label, on the control connections.
func (e *Engine) Balances(ctx context.Context) (map[string][]ledger.Account, error) {
	if !e.cfg.TwoDatabases() {
		return nil, errors.New("balances by database: this run has one database")
	}
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	out := map[string][]ledger.Account{}
	for _, sd := range e.sides {
		accounts, err := sd.accounts(ctx)
		if err != nil {
			return nil, err
		}
		out[sd.label] = accounts
	}
	return out, nil
}

// ReadBalances is what a BooksRead event carries: a one-database run's
// balances and books, or a two-database run's balances by database.
func (e *Engine) ReadBalances(ctx context.Context) Balances {
	b := Balances{Taken: time.Now()}
	if e.cfg.TwoDatabases() {
		b.ByDatabase, b.Err = e.Balances(ctx)
		return b
	}
	if e.cfg.Setup.Accounts > BigLedger {
		return e.readSomeBalances(ctx, b)
	}
	underWay := e.transferUnderWay()
	accounts, books, err := e.Books(ctx)
	if err != nil {
		b.Err = err
		return b
	}
	// Before the read or after it: a statement that committed in between
	// may be in what was read.
	books.UnderWay = underWay || e.transferUnderWay()
	b.Accounts, b.Books = accounts, &books
	return b
}

// transferUnderWay says whether a transfer outside a transaction (the
// autocommit strategy) has run some of its statements, each committed
// alone, and not all: the books then show it partly done.
func (e *Engine) transferUnderWay() bool {
	if e.cfg.Scenario != nil || e.cfg.Strategy == nil || e.cfg.Strategy.Transactional {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.sessions {
		if s.next > 0 && s.next < s.script.Len() {
			return true
		}
	}
	return false
}

// BigLedger is the ledger size above which a step reads only the accounts a
// screen shows, and checks the books by the accounts the run touched: a
// whole read of a million accounts takes most of a second.
const BigLedger = 10_000

// ShownAccounts is how many of a big ledger's first accounts a step reads,
// besides those the run's transfers touch.
const ShownAccounts = 40

// readSomeBalances reads a big ledger's shown accounts and checks its books
// by the accounts the run touched.
func (e *Engine) readSomeBalances(ctx context.Context, b Balances) Balances {
	e.mu.Lock()
	var ids []int64
	for _, s := range e.sessions {
		ids = append(ids, s.transfer.From, s.transfer.To)
	}
	e.mu.Unlock()
	underWay := e.transferUnderWay()
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	sd := e.sides[0]
	if err := sd.reconnectControl(ctx); err != nil {
		b.Err = err
		return b
	}
	if err := sd.timed(ctx); err != nil {
		b.Err = err
		return b
	}
	accounts, err := ledger.AccountsShown(ctx, sd.ctl, ShownAccounts, ids)
	if err != nil {
		b.Err = sd.ledgerError(err)
		return b
	}
	books, err := ledger.CheckBooksOf(ctx, sd.ctl, e.cfg.Setup, ids)
	if err != nil {
		b.Err = sd.ledgerError(err)
		return b
	}
	books.UnderWay = underWay || e.transferUnderWay()
	b.Accounts, b.Books, b.Count = accounts, &books, e.cfg.Setup.Accounts
	b.Partial = fmt.Sprintf("books checked by the accounts this run touched, of %d (lockstep run checks all of them at its end)", b.Count)
	return b
}

// InSync says whether both databases hold the same balances.
func InSync(balances map[string][]ledger.Account) bool {
	a, b := balances["A"], balances["B"]
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ID != b[i].ID || !a[i].Balance.Equal(b[i].Balance) {
			return false
		}
	}
	return true
}

// Prepared lists the run's prepared transactions in every database, from pg_prepared_xacts.
func (e *Engine) Prepared(ctx context.Context) ([]Prepared, error) {
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	return e.prepared(ctx)
}

// prepared lists them; e.ctlMu is held.
func (e *Engine) prepared(ctx context.Context) ([]Prepared, error) {
	var out []Prepared
	for _, sd := range e.sides {
		list, err := sd.prepared(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, list...)
	}
	return out, nil
}

// ResolvePrepared ends a prepared transaction of the run, as an operator
// would after a crash: COMMIT PREPARED (commit true) or ROLLBACK PREPARED,
// in the database that holds it.
func (e *Engine) ResolvePrepared(ctx context.Context, p Prepared, commit bool) error {
	if _, ours := e.runID.Name(p.GID); !ours {
		return fmt.Errorf("%q is not a prepared transaction of this run", p.GID)
	}
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	for _, sd := range e.sides {
		if sd.label == p.Database {
			if err := sd.endPrepared(ctx, p.GID, commit); err != nil {
				return err
			}
			e.kickObserver()
			return nil
		}
	}
	return fmt.Errorf("no database %q in this run", p.Database)
}

// rollbackPrepared rolls back whatever the run left prepared, so that no
// lock outlives it; e.ctlMu is held.
func (e *Engine) rollbackPrepared(ctx context.Context) error {
	// A spec run as the tester runs it names its prepared transactions
	// itself ('s1'), never in the run's form: there is nothing of ours to find.
	if e.cfg.Lean || !e.cfg.usesTwoPhaseCommit() {
		return nil
	}
	list, err := e.prepared(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range list {
		for _, sd := range e.sides {
			if sd.label == p.Database {
				errs = append(errs, sd.endPrepared(ctx, p.GID, false))
			}
		}
	}
	return errors.Join(errs...)
}
