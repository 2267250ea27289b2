package ledger

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
)

// Books is the result of checking the ledger's invariants.
type Books struct {
	// Opening is the money the ledger was opened with; Total is what it holds now.
	Opening, Total decimal.Decimal
	// Drift lists accounts whose balance is not opening balance + entries.
	Drift []Drift
	// BadTransfers lists transfers without exactly two entries summing to zero.
	BadTransfers []BadTransfer
	// UnderWay says a transfer was under way outside a transaction when the
	// books were read, or was left so (a chaos worker killed partway) — the
	// autocommit strategy, some of a transfer's statements run and
	// committed, not all: a balance that disagrees with complete entries is
	// then an update not made, not a lost one. The caller that knows the
	// sessions sets it.
	UnderWay bool `json:",omitempty"`
}

// Drift is an account whose balance disagrees with its entries: a lost
// update, or half a transfer.
type Drift struct {
	Account  int64
	Balance  decimal.Decimal // what the row says
	Expected decimal.Decimal // opening balance + entries
}

// BadTransfer is a transfer whose entries do not balance.
type BadTransfer struct {
	Transfer int64
	Entries  int
	Sum      decimal.Decimal
}

// LostUpdate is true when balances disagree with complete transfers: every
// transfer has its two entries, so an update was overwritten — unless a
// transfer is under way outside a transaction, its update still to come.
func (b Books) LostUpdate() bool {
	return len(b.Drift) > 0 && len(b.BadTransfers) == 0 && !b.UnderWay
}

// OK is true when the books are kept: money neither made nor lost, every
// balance matches its entries, every transfer has two entries summing to zero.
func (b Books) OK() bool {
	return b.Opening.Equal(b.Total) && len(b.Drift) == 0 && len(b.BadTransfers) == 0
}

// Summary is one line: "total 200.00 = 200.00 ok" or what is wrong.
func (b Books) Summary() string {
	var parts []string
	diff := b.Total.Sub(b.Opening)
	switch {
	case diff.IsPositive():
		parts = append(parts, fmt.Sprintf("total %s ≠ %s: %s created", money(b.Total), money(b.Opening), money(diff)))
	case diff.IsNegative():
		parts = append(parts, fmt.Sprintf("total %s ≠ %s: %s lost", money(b.Total), money(b.Opening), money(diff.Neg())))
	default:
		parts = append(parts, fmt.Sprintf("total %s = %s", money(b.Total), money(b.Opening)))
	}
	for _, d := range b.Drift {
		parts = append(parts, fmt.Sprintf("account %d holds %s but its entries say %s", d.Account, money(d.Balance), money(d.Expected)))
	}
	for _, t := range b.BadTransfers {
		parts = append(parts, fmt.Sprintf("transfer %d has %d entries summing to %s", t.Transfer, t.Entries, money(t.Sum)))
	}
	if b.OK() {
		return parts[0] + " ok"
	}
	if b.LostUpdate() {
		parts = append(parts, "a lost update: the balances are not what the committed transfers imply")
	}
	if b.UnderWay {
		parts = append(parts, underWay)
	}
	return strings.Join(parts, "; ")
}

// underWay is Summary's part for books read while a transfer was under way
// outside a transaction.
const underWay = "a transfer partly committed: outside a transaction each of its statements commits alone, and not all have run"

// Brief is the verdict in the fewest words that keep its lesson, for a
// line with no room for Summary: "total 200.00 ok"; else the one thing most
// wrong — a lost update, money created or lost, the first account or
// transfer that disagrees — with " …" when Summary says more. Never the
// totals alone when the books are broken: "total 200.00 = 200.00" cut
// short reads as kept.
func (b Books) Brief() string {
	if b.OK() {
		return "total " + money(b.Total) + " ok"
	}
	diff := b.Total.Sub(b.Opening)
	var brief string
	switch {
	case b.UnderWay:
		brief = "a transfer partly committed"
	case b.LostUpdate():
		brief = "a lost update"
	case diff.IsPositive():
		brief = money(diff) + " created"
	case diff.IsNegative():
		brief = money(diff.Neg()) + " lost"
	case len(b.Drift) > 0:
		d := b.Drift[0]
		brief = fmt.Sprintf("account %d holds %s, its entries say %s", d.Account, money(d.Balance), money(d.Expected))
	default:
		t := b.BadTransfers[0]
		brief = fmt.Sprintf("transfer %d's entries sum to %s", t.Transfer, money(t.Sum))
		if t.Entries != 2 {
			brief = fmt.Sprintf("transfer %d has %d entries", t.Transfer, t.Entries)
		}
	}
	// Summary says more unless this was all of it: one drift or one bad
	// transfer with equal totals.
	if !diff.IsZero() || len(b.Drift)+len(b.BadTransfers) > 1 || b.LostUpdate() || b.UnderWay {
		brief += " …"
	}
	return brief
}

// CheckBooks reads the ledger and checks its invariants, on a connection
// outside any session's transaction.
func CheckBooks(ctx context.Context, q Querier) (Books, error) {
	var b Books
	err := q.QueryRow(ctx, "SELECT coalesce(sum(opening_balance), 0), coalesce(sum(balance), 0) FROM accounts").Scan(&b.Opening, &b.Total)
	if err != nil {
		return b, fmt.Errorf("summing balances: %w", err)
	}
	rows, err := q.Query(ctx, `
		SELECT a.id, a.balance, a.opening_balance + coalesce(e.sum, 0)
		FROM accounts a
		LEFT JOIN (SELECT account_id, sum(amount) FROM entries GROUP BY account_id) e ON e.account_id = a.id
		WHERE a.balance <> a.opening_balance + coalesce(e.sum, 0)
		ORDER BY a.id`)
	if err != nil {
		return b, fmt.Errorf("comparing balances with entries: %w", err)
	}
	b.Drift, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Drift, error) {
		var d Drift
		return d, r.Scan(&d.Account, &d.Balance, &d.Expected)
	})
	if err != nil {
		return b, fmt.Errorf("comparing balances with entries: %w", err)
	}
	b.BadTransfers, err = badTransfers(ctx, q)
	return b, err
}

// badTransfers lists the transfers without exactly two entries summing to zero.
func badTransfers(ctx context.Context, q Querier) ([]BadTransfer, error) {
	rows, err := q.Query(ctx, `
		SELECT t.id, count(e.id)::int, coalesce(sum(e.amount), 0)
		FROM transfers t LEFT JOIN entries e ON e.transfer_id = t.id
		GROUP BY t.id
		HAVING count(e.id) <> 2 OR coalesce(sum(e.amount), 0) <> 0
		ORDER BY t.id`)
	if err != nil {
		return nil, fmt.Errorf("checking transfers' entries: %w", err)
	}
	bad, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (BadTransfer, error) {
		var t BadTransfer
		return t, r.Scan(&t.Transfer, &t.Entries, &t.Sum)
	})
	if err != nil {
		return nil, fmt.Errorf("checking transfers' entries: %w", err)
	}
	return bad, nil
}

// CheckBooksOf checks the books of a big ledger by the accounts that can
// have changed: those in ids (the run's transfers') and those any entry
// names. The opening total is the setup's (every account opened with the
// same balance), and the total is that plus the changes: the cost grows with
// what the run touched, not with the ledger. A change made elsewhere by
// hand (typed SQL) is not seen; CheckBooks sees everything.
func CheckBooksOf(ctx context.Context, q Querier, setup Setup, ids []int64) (Books, error) {
	b := Books{Opening: setup.Balance.Mul(decimal.NewFromInt(int64(setup.Accounts)))}
	if ids == nil {
		ids = []int64{}
	}
	var delta decimal.Decimal
	rows, err := q.Query(ctx, `
		WITH touched AS (SELECT unnest($1::bigint[]) AS id UNION SELECT account_id FROM entries),
		     sums AS (SELECT account_id, sum(amount) AS sum FROM entries GROUP BY account_id)
		SELECT a.id, a.balance, a.opening_balance + coalesce(s.sum, 0), a.balance - a.opening_balance
		FROM touched t JOIN accounts a ON a.id = t.id LEFT JOIN sums s ON s.account_id = a.id
		ORDER BY a.id`, ids)
	if err != nil {
		return b, fmt.Errorf("checking the touched accounts: %w", err)
	}
	for rows.Next() {
		var d Drift
		var change decimal.Decimal
		if err := rows.Scan(&d.Account, &d.Balance, &d.Expected, &change); err != nil {
			rows.Close()
			return b, fmt.Errorf("checking the touched accounts: %w", err)
		}
		delta = delta.Add(change)
		if !d.Balance.Equal(d.Expected) {
			b.Drift = append(b.Drift, d)
		}
	}
	if err := rows.Err(); err != nil {
		return b, fmt.Errorf("checking the touched accounts: %w", err)
	}
	b.Total = b.Opening.Add(delta)
	bad, err := badTransfers(ctx, q)
	b.BadTransfers = bad
	return b, err
}

// AccountsShown reads the first accounts, up to first, and those in ids:
// what a screen shows of a big ledger.
func AccountsShown(ctx context.Context, q Querier, first int, ids []int64) ([]Account, error) {
	if ids == nil {
		ids = []int64{}
	}
	rows, err := q.Query(ctx, "SELECT id, owner, balance, opening_balance FROM accounts WHERE id <= $1 OR id = ANY($2) ORDER BY id", first, ids)
	if err != nil {
		return nil, fmt.Errorf("reading accounts: %w", err)
	}
	accounts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Account, error) {
		var a Account
		return a, r.Scan(&a.ID, &a.Owner, &a.Balance, &a.OpeningBalance)
	})
	if err != nil {
		return nil, fmt.Errorf("reading accounts: %w", err)
	}
	return accounts, nil
}
