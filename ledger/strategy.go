package ledger

import (
	"fmt"
	"strings"

	"github.com/shopspring/decimal"
)

// Transfer is one movement of money between two accounts.
type Transfer struct {
	From, To int64
	Amount   decimal.Decimal
}

func (t Transfer) String() string {
	return fmt.Sprintf("%s from account %d to account %d", t.Amount.StringFixed(2), t.From, t.To)
}

// Strategy is one way of writing the transfer: a statement list a user can
// step through, and that the runner can also run whole.
type Strategy struct {
	// Name is the strategy's CLI name, e.g. "for-update".
	Name string
	// Summary says in one line what the strategy shows.
	Summary string
	// Transactional is false only for the autocommit strategy.
	Transactional bool
	build         func(t Transfer, schema string) []Statement
}

// Script is the statement list of one transfer under one strategy.
func (s *Strategy) Script(t Transfer, schema string) *Script {
	return &Script{Strategy: s, Transfer: t, Statements: s.build(t, schema)}
}

// Strategies are the ten strategies, in the order a lesson meets them.
func Strategies() []*Strategy {
	return []*Strategy{
		{
			Name:    "none",
			Summary: "autocommit, no transaction: a crash between statements leaves half a transfer",
			build: func(t Transfer, _ string) []Statement {
				return append(inserts(t), add(t.From, t.Amount.Neg()), add(t.To, t.Amount))
			},
		},
		{
			Name:          "naive",
			Summary:       "a transaction, but read-then-write with plain SELECTs: concurrent transfers lose updates",
			Transactional: true,
			build: func(t Transfer, _ string) []Statement {
				return wrap("", readModifyWrite(t, ""))
			},
		},
		{
			Name:          "for-update",
			Summary:       "SELECT … FOR UPDATE after the inserts: FOR UPDATE conflicts with the foreign keys' KEY SHARE locks, so it deadlocks",
			Transactional: true,
			build: func(t Transfer, _ string) []Statement {
				return wrap("", readModifyWrite(t, "FOR UPDATE"))
			},
		},
		{
			Name:          "for-no-key-update",
			Summary:       "SELECT … FOR NO KEY UPDATE: does not conflict with KEY SHARE, so the same order waits instead of deadlocking",
			Transactional: true,
			build: func(t Transfer, _ string) []Statement {
				return wrap("", readModifyWrite(t, "FOR NO KEY UPDATE"))
			},
		},
		{
			Name:          "atomic",
			Summary:       "UPDATE … SET balance = balance ± amount, from account first: no lost update, but opposite transfers deadlock",
			Transactional: true,
			build: func(t Transfer, _ string) []Statement {
				return wrap("", append(inserts(t), add(t.From, t.Amount.Neg()), add(t.To, t.Amount)))
			},
		},
		{
			Name:          "ordered",
			Summary:       "atomic updates in ascending account id: transfers in either direction wait, never deadlock",
			Transactional: true,
			build: func(t Transfer, _ string) []Statement {
				first, second := add(t.From, t.Amount.Neg()), add(t.To, t.Amount)
				if t.To < t.From {
					first, second = second, first
				}
				return wrap("", append(inserts(t), first, second))
			},
		},
		{
			Name:          "table-lock",
			Summary:       "LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE first: correct, but every transfer waits for every other",
			Transactional: true,
			build: func(t Transfer, _ string) []Statement {
				lock := Statement{Kind: LockTable}
				return wrap("", append([]Statement{lock}, readModifyWrite(t, "")...))
			},
		},
		{
			Name:          "advisory",
			Summary:       "pg_advisory_xact_lock on both account ids in ascending order: application-defined locks, only transfers sharing an account wait",
			Transactional: true,
			build: func(t Transfer, schema string) []Statement {
				lo, hi := min(t.From, t.To), max(t.From, t.To)
				locks := []Statement{
					{Kind: AdvisoryLock, Account: lo, Namespace: schema},
					{Kind: AdvisoryLock, Account: hi, Namespace: schema},
				}
				return wrap("", append(locks, readModifyWrite(t, "")...))
			},
		},
		{
			Name:          "repeatable-read",
			Summary:       "the naive statements under REPEATABLE READ: the lost update becomes a serialization failure to retry",
			Transactional: true,
			build: func(t Transfer, _ string) []Statement {
				return wrap("REPEATABLE READ", readModifyWrite(t, ""))
			},
		},
		{
			Name:          "serializable",
			Summary:       "the naive statements under SERIALIZABLE: SIRead locks track reads; conflicts abort with 40001",
			Transactional: true,
			build: func(t Transfer, _ string) []Statement {
				return wrap("SERIALIZABLE", readModifyWrite(t, ""))
			},
		},
	}
}

// StrategyNames lists the strategies' CLI names, comma separated.
func StrategyNames() string {
	var names []string
	for _, s := range Strategies() {
		names = append(names, s.Name)
	}
	return strings.Join(names, ", ")
}

// Lookup finds a strategy by CLI name.
func Lookup(name string) (*Strategy, error) {
	for _, s := range Strategies() {
		if s.Name == name {
			return s, nil
		}
	}
	return nil, fmt.Errorf("unknown strategy %q: choose one of %s (see `lockstep strategies`)", name, StrategyNames())
}

// inserts records the transfer and its two entries. As in the lecture they
// come first: each insert's foreign-key check takes FOR KEY SHARE on the
// account rows it references.
func inserts(t Transfer) []Statement {
	// Room for what the strategies append: two to six more statements.
	return append(make([]Statement, 0, 9),
		Statement{Kind: InsertTransfer, Transfer: t},
		Statement{Kind: InsertEntry, Account: t.From, Amount: t.Amount.Neg()},
		Statement{Kind: InsertEntry, Account: t.To, Amount: t.Amount},
	)
}

// readModifyWrite is the inserts, then for each account a SELECT of the
// balance (with lock clause, if any) and an UPDATE to the value read ± amount.
func readModifyWrite(t Transfer, lock string) []Statement {
	return append(inserts(t),
		Statement{Kind: ReadBalance, Account: t.From, Lock: lock},
		Statement{Kind: SetBalance, Account: t.From, Amount: t.Amount.Neg()},
		Statement{Kind: ReadBalance, Account: t.To, Lock: lock},
		Statement{Kind: SetBalance, Account: t.To, Amount: t.Amount},
	)
}

func add(account int64, delta decimal.Decimal) Statement {
	return Statement{Kind: AddBalance, Account: account, Amount: delta}
}

func wrap(isolation string, body []Statement) []Statement {
	out := make([]Statement, 0, len(body)+2)
	out = append(out, Statement{Kind: Begin, Isolation: isolation})
	out = append(out, body...)
	return append(out, Statement{Kind: Commit})
}
