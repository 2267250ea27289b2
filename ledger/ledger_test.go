package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/shopspring/decimal"

	"lockstep/dbtest"
	"lockstep/ledger"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

var ten = decimal.RequireFromString("10.00")

func TestScriptsRender(t *testing.T) {
	t.Parallel()
	inserts := []string{
		"INSERT INTO transfers (from_account_id, to_account_id, amount) VALUES (2, 1, 10.00) RETURNING id",
		"INSERT INTO entries (transfer_id, account_id, amount) VALUES (<transfer id>, 2, -10.00)",
		"INSERT INTO entries (transfer_id, account_id, amount) VALUES (<transfer id>, 1, 10.00)",
	}
	rmw := func(lock string) []string {
		if lock != "" {
			lock = " " + lock
		}
		return append(append([]string{}, inserts...),
			"SELECT balance FROM accounts WHERE id = 2"+lock,
			"UPDATE accounts SET balance = <balance read> - 10.00 WHERE id = 2 RETURNING balance",
			"SELECT balance FROM accounts WHERE id = 1"+lock,
			"UPDATE accounts SET balance = <balance read> + 10.00 WHERE id = 1 RETURNING balance",
		)
	}
	tx := func(begin string, body ...string) []string {
		return append(append([]string{begin}, body...), "COMMIT")
	}
	sub := "UPDATE accounts SET balance = balance - 10.00 WHERE id = 2 RETURNING balance"
	add := "UPDATE accounts SET balance = balance + 10.00 WHERE id = 1 RETURNING balance"
	want := map[string][]string{
		"none":              append(append([]string{}, inserts...), sub, add),
		"naive":             tx("BEGIN", rmw("")...),
		"for-update":        tx("BEGIN", rmw("FOR UPDATE")...),
		"for-no-key-update": tx("BEGIN", rmw("FOR NO KEY UPDATE")...),
		"atomic":            tx("BEGIN", append(append([]string{}, inserts...), sub, add)...),
		"ordered":           tx("BEGIN", append(append([]string{}, inserts...), add, sub)...),
		"table-lock":        tx("BEGIN", append([]string{"LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE"}, rmw("")...)...),
		"advisory": tx("BEGIN", append([]string{
			"SELECT pg_advisory_xact_lock(hashtext('lockstep'), 1)",
			"SELECT pg_advisory_xact_lock(hashtext('lockstep'), 2)",
		}, rmw("")...)...),
		"repeatable-read": tx("BEGIN ISOLATION LEVEL REPEATABLE READ", rmw("")...),
		"serializable":    tx("BEGIN ISOLATION LEVEL SERIALIZABLE", rmw("")...),
	}
	if got := len(ledger.Strategies()); got != len(want) {
		t.Fatalf("%d strategies, want %d", got, len(want))
	}
	for _, s := range ledger.Strategies() {
		script := s.Script(ledger.Transfer{From: 2, To: 1, Amount: ten}, "lockstep")
		var got []string
		for i := range script.Statements {
			got = append(got, script.SQL(i))
		}
		if strings.Join(got, "\n") != strings.Join(want[s.Name], "\n") {
			t.Errorf("%s renders\n%s\nwant\n%s", s.Name, strings.Join(got, "\n"), strings.Join(want[s.Name], "\n"))
		}
		if s.Summary == "" {
			t.Errorf("%s has no summary", s.Name)
		}
	}
}

func TestScriptRendersValuesRead(t *testing.T) {
	t.Parallel()
	s, err := ledger.Lookup("for-update")
	if err != nil {
		t.Fatal(err)
	}
	script := s.Script(ledger.Transfer{From: 1, To: 2, Amount: ten}, "lockstep")
	if err := script.Record(1, []any{int64(42)}); err != nil {
		t.Fatal(err)
	}
	if err := script.Record(4, []any{decimal.RequireFromString("100.00")}); err != nil {
		t.Fatal(err)
	}
	for i, want := range map[int]string{
		2: "INSERT INTO entries (transfer_id, account_id, amount) VALUES (42, 1, -10.00)",
		5: "UPDATE accounts SET balance = 90.00 WHERE id = 1 RETURNING balance",
		7: "UPDATE accounts SET balance = <balance read> + 10.00 WHERE id = 2 RETURNING balance",
	} {
		if got := script.SQL(i); got != want {
			t.Errorf("statement %d renders %q, want %q", i, got, want)
		}
	}
}

func TestLookupUnknown(t *testing.T) {
	t.Parallel()
	_, err := ledger.Lookup("optimistic")
	if err == nil || !strings.Contains(err.Error(), "for-no-key-update") {
		t.Fatalf("Lookup(optimistic) = %v, want an error listing the strategies", err)
	}
}

// TestEveryStrategyKeepsTheBooksRunWhole runs each strategy's transfers
// whole, as literal text and prepared (Runner.Prepared, the bench's goroutine
// workers), and checks the balances they leave.
func TestEveryStrategyKeepsTheBooksRunWhole(t *testing.T) {
	t.Parallel()
	for _, s := range ledger.Strategies() {
		for _, prepared := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/prepared=%v", s.Name, prepared), func(t *testing.T) {
				t.Parallel()
				d := dbtest.Fresh(t, ledger.Setup{Accounts: 3, Balance: decimal.RequireFromString("100.00")})
				ctx := context.Background()
				conn, err := d.Connect(ctx, "lockstep/test")
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close(ctx)
				r := ledger.Runner{Conn: conn, Schema: d.Schema(), Prepared: prepared}
				transfers := []ledger.Transfer{{1, 2, ten}, {2, 3, ten}, {3, 1, decimal.RequireFromString("0.01")}, {2, 1, ten}}
				for _, tr := range transfers {
					if _, err := r.Transfer(ctx, s, tr); err != nil {
						t.Fatalf("transfer %v: %v", tr, err)
					}
				}
				books, err := ledger.CheckBooks(ctx, conn)
				if err != nil {
					t.Fatal(err)
				}
				if !books.OK() {
					t.Fatalf("books broken: %s", books.Summary())
				}
				accounts, err := ledger.Accounts(ctx, conn)
				if err != nil {
					t.Fatal(err)
				}
				want := []string{"100.01", "90.00", "109.99"}
				for i, a := range accounts {
					if a.Balance.StringFixed(2) != want[i] {
						t.Errorf("account %d holds %s, want %s", a.ID, a.Balance.StringFixed(2), want[i])
					}
				}
			})
		}
	}
}

// TestConcurrentOrderedTransfers is the lecture's test: five concurrent
// transfers of 10.00 from account 1 to 2; each sees a distinct multiple of
// 10.00 leave account 1, and the balances move by exactly 50.00.
func TestConcurrentOrderedTransfers(t *testing.T) {
	t.Parallel()
	d := dbtest.Fresh(t, ledger.DefaultSetup())
	ctx := context.Background()
	s, err := ledger.Lookup("ordered")
	if err != nil {
		t.Fatal(err)
	}
	const n = 5
	opening := decimal.RequireFromString("100.00")
	results := make([]ledger.Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			conn, err := d.Connect(ctx, "lockstep/test")
			if err != nil {
				errs[i] = err
				return
			}
			defer conn.Close(ctx)
			r := ledger.Runner{Conn: conn, Schema: d.Schema()}
			results[i], errs[i] = r.Transfer(ctx, s, ledger.Transfer{From: 1, To: 2, Amount: ten})
		})
	}
	wg.Wait()
	seen := map[int64]bool{}
	for i, res := range results {
		if errs[i] != nil {
			t.Fatalf("transfer %d: %v", i, errs[i])
		}
		out := opening.Sub(res.FromBalance)
		in := res.ToBalance.Sub(opening)
		if !out.Equal(in) || !out.IsPositive() {
			t.Fatalf("transfer %d: %s left account 1 but %s reached account 2", i, out, in)
		}
		k := out.Div(ten)
		if !k.IsInteger() || k.IntPart() < 1 || k.IntPart() > n || seen[k.IntPart()] {
			t.Fatalf("transfer %d: difference %s is not a fresh multiple k·10.00 with 1 ≤ k ≤ %d (seen %v)", i, out, n, seen)
		}
		seen[k.IntPart()] = true
	}
	conn, err := d.Connect(ctx, "lockstep/test")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	accounts, err := ledger.Accounts(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if got := accounts[0].Balance.StringFixed(2); got != "50.00" {
		t.Errorf("account 1 holds %s, want 50.00", got)
	}
	if got := accounts[1].Balance.StringFixed(2); got != "150.00" {
		t.Errorf("account 2 holds %s, want 150.00", got)
	}
}

func TestResetRefusesUnmarkedSchema(t *testing.T) {
	t.Parallel()
	d := dbtest.Schema(t)
	ctx := context.Background()
	conn, err := d.Connect(ctx, "lockstep/test")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+d.Schema()+"; CREATE TABLE "+d.Schema()+".precious (x int)"); err != nil {
		t.Fatal(err)
	}
	_, err = dbtest.Ledger(t).Reset(ctx, conn, d.Schema(), ledger.DefaultSetup())
	if !errors.Is(err, ledger.ErrUnmarkedSchema) {
		t.Fatalf("Reset over an unmarked schema: %v, want ErrUnmarkedSchema", err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+d.Schema()+".precious").Scan(&n); err != nil {
		t.Fatalf("the unmarked schema's table is gone: %v", err)
	}
	// A schema lockstep made is reset without complaint, twice.
	other := dbtest.Fresh(t, ledger.DefaultSetup())
	conn2, err := other.Connect(ctx, "lockstep/test")
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close(ctx)
	if made, err := dbtest.Ledger(t).Reset(ctx, conn2, other.Schema(), ledger.Setup{Accounts: 5, Balance: ten}); err != nil || made {
		t.Fatalf("resetting lockstep's own schema: %v", err)
	}
	accounts, err := ledger.Accounts(ctx, conn2)
	if err != nil {
		t.Fatal(err)
	}
	if len(accounts) != 5 || accounts[0].Owner != "alice" || !accounts[4].Balance.Equal(ten) {
		t.Fatalf("after reset: %+v", accounts)
	}
}

func TestSetupValidate(t *testing.T) {
	t.Parallel()
	for _, s := range []ledger.Setup{
		{Accounts: 0, Balance: ten},
		{Accounts: 1, Balance: ten},
		{Accounts: 2, Balance: ten.Neg()},
		{Accounts: 2, Balance: decimal.RequireFromString("10000000000")},
	} {
		if err := s.Validate(); err == nil {
			t.Errorf("Validate(%+v) accepted it", s)
		}
	}
	if err := ledger.DefaultSetup().Validate(); err != nil {
		t.Errorf("default setup: %v", err)
	}
}
