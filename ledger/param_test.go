package ledger_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shopspring/decimal"

	"lockstep/db"
	"lockstep/dbtest"
	"lockstep/ledger"
)

// outcome is what one statement did on the server: its first row, its
// error's SQLSTATE, the transaction status after it, and what a check
// query then reads of the server's state.
type outcome struct {
	row      []string
	sqlstate string
	txStatus byte
	state    []string
}

func (o outcome) String() string {
	return fmt.Sprintf("row %q, SQLSTATE %q, status %c, state %q", o.row, o.sqlstate, o.txStatus, o.state)
}

// TestParamIsSQL runs every statement kind, in every shape the strategies
// use and at the edges where a literal's type or a constraint decides, both
// as its SQL() text (simple protocol) and in its Param form (extended
// protocol, the values bound as text), and checks that the server did the
// same: the same row, the same error, the same transaction status, and the
// same state after (rows written, locks taken, isolation level).
func TestParamIsSQL(t *testing.T) {
	t.Parallel()
	d := dbtest.Fresh(t, ledger.Setup{Accounts: 3, Balance: decimal.RequireFromString("100.00")})
	ctx := context.Background()
	conn, err := d.Connect(ctx, "lockstep/test")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	pc := conn.PgConn()

	money := decimal.RequireFromString
	read := func(account int64, balance string) ledger.Vars {
		return ledger.Vars{Read: map[int64]decimal.Decimal{account: money(balance)}}
	}
	withID := ledger.Vars{TransferID: 101, HasTransferID: true}
	// Every case starts a transaction and sets the transfers' sequence, so
	// that both forms insert transfer 101; each ends with ROLLBACK.
	begin := []string{"BEGIN", "SELECT setval('transfers_id_seq', 100)"}
	withTransfer := append(append([]string{}, begin...), "INSERT INTO transfers (from_account_id, to_account_id, amount) VALUES (1, 2, 10.00)")
	const (
		relLocks      = "SELECT string_agg(mode, ',' ORDER BY mode) FROM pg_locks WHERE pid = pg_backend_pid() AND relation = 'accounts'::regclass"
		advisoryLocks = "SELECT string_agg(classid || '/' || objid || '/' || objsubid, ',') FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory'"
		transfers     = "SELECT string_agg(id || ' ' || from_account_id || ' ' || to_account_id || ' ' || amount, ',' ORDER BY id) FROM transfers"
		entries       = "SELECT string_agg(transfer_id || ' ' || account_id || ' ' || amount, ',' ORDER BY id) FROM entries"
		balances      = "SELECT string_agg(id || ' ' || balance, ',' ORDER BY id) FROM accounts"
		isolation     = "SELECT current_setting('transaction_isolation')"
	)
	cases := []struct {
		name  string
		setup []string
		st    ledger.Statement
		vars  ledger.Vars
		check string
	}{
		{"begin", nil, ledger.Statement{Kind: ledger.Begin}, ledger.Vars{}, isolation},
		{"begin repeatable read", nil, ledger.Statement{Kind: ledger.Begin, Isolation: "REPEATABLE READ"}, ledger.Vars{}, isolation},
		{"begin serializable", nil, ledger.Statement{Kind: ledger.Begin, Isolation: "SERIALIZABLE"}, ledger.Vars{}, isolation},
		{"commit", []string{"BEGIN", "SELECT pg_advisory_xact_lock(7)"}, ledger.Statement{Kind: ledger.Commit}, ledger.Vars{}, advisoryLocks},
		{"lock table", begin, ledger.Statement{Kind: ledger.LockTable}, ledger.Vars{}, relLocks},
		{"advisory lock", begin, ledger.Statement{Kind: ledger.AdvisoryLock, Account: 2, Namespace: "lockstep"}, ledger.Vars{}, advisoryLocks},
		{"advisory lock, an account past int4", begin, ledger.Statement{Kind: ledger.AdvisoryLock, Account: 3_000_000_000, Namespace: "lockstep"}, ledger.Vars{}, advisoryLocks},
		{"insert transfer", begin, ledger.Statement{Kind: ledger.InsertTransfer, Transfer: ledger.Transfer{From: 3, To: 1, Amount: money("0.37")}}, ledger.Vars{}, transfers},
		{"insert transfer, a third decimal", begin, ledger.Statement{Kind: ledger.InsertTransfer, Transfer: ledger.Transfer{From: 3, To: 1, Amount: money("0.375")}}, ledger.Vars{}, transfers},
		{"insert transfer of nothing", begin, ledger.Statement{Kind: ledger.InsertTransfer, Transfer: ledger.Transfer{From: 3, To: 1, Amount: money("0")}}, ledger.Vars{}, transfers},
		{"insert transfer to itself", begin, ledger.Statement{Kind: ledger.InsertTransfer, Transfer: ledger.Transfer{From: 2, To: 2, Amount: ten}}, ledger.Vars{}, transfers},
		{"insert transfer from no account", begin, ledger.Statement{Kind: ledger.InsertTransfer, Transfer: ledger.Transfer{From: 9, To: 2, Amount: ten}}, ledger.Vars{}, transfers},
		{"insert entry", withTransfer, ledger.Statement{Kind: ledger.InsertEntry, Account: 1, Amount: money("-10.00")}, withID, entries},
		{"insert entry, no such transfer", begin, ledger.Statement{Kind: ledger.InsertEntry, Account: 1, Amount: money("-10.00")}, withID, entries},
		{"read balance", begin, ledger.Statement{Kind: ledger.ReadBalance, Account: 2}, ledger.Vars{}, relLocks},
		{"read balance for update", begin, ledger.Statement{Kind: ledger.ReadBalance, Account: 2, Lock: "FOR UPDATE"}, ledger.Vars{}, relLocks},
		{"read balance for no key update", begin, ledger.Statement{Kind: ledger.ReadBalance, Account: 2, Lock: "FOR NO KEY UPDATE"}, ledger.Vars{}, relLocks},
		{"read balance of no account", begin, ledger.Statement{Kind: ledger.ReadBalance, Account: 9}, ledger.Vars{}, relLocks},
		{"set balance", begin, ledger.Statement{Kind: ledger.SetBalance, Account: 2, Amount: money("-10.00")}, read(2, "100.00"), balances},
		{"set balance past numeric(12,2)", begin, ledger.Statement{Kind: ledger.SetBalance, Account: 2, Amount: money("0.01")}, read(2, "9999999999.99"), balances},
		{"add balance", begin, ledger.Statement{Kind: ledger.AddBalance, Account: 3, Amount: money("-0.01")}, ledger.Vars{}, balances},
		{"add balance, positive", begin, ledger.Statement{Kind: ledger.AddBalance, Account: 1, Amount: ten}, ledger.Vars{}, balances},
		{"add balance of no account", begin, ledger.Statement{Kind: ledger.AddBalance, Account: 9, Amount: ten}, ledger.Vars{}, balances},
	}
	covered := map[ledger.Kind]bool{}
	for _, c := range cases {
		covered[c.st.Kind] = true
	}
	for k := ledger.Begin; k <= ledger.AddBalance; k++ {
		if !covered[k] {
			t.Errorf("no case runs statement kind %d", k)
		}
	}

	// run runs the case's setup, then the statement by send, then its
	// check, then rolls back.
	run := func(setup []string, check string, send func() ([]string, error)) outcome {
		t.Helper()
		for _, s := range setup {
			if _, err := pc.Exec(ctx, s).ReadAll(); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
		var o outcome
		row, err := send()
		o.row, o.sqlstate, o.txStatus = row, db.SQLState(err), pc.TxStatus()
		if err != nil && o.sqlstate == "" {
			t.Fatalf("not a server's error: %v", err)
		}
		if o.txStatus != 'E' {
			r, err := pc.Exec(ctx, check).ReadAll()
			if err != nil {
				t.Fatalf("%s: %v", check, err)
			}
			for _, v := range r[0].Rows[0] {
				o.state = append(o.state, string(v))
			}
		}
		if _, err := pc.Exec(ctx, "ROLLBACK").ReadAll(); err != nil {
			t.Fatal(err)
		}
		return o
	}
	firstRow := func(r *pgconn.Result) ([]string, error) {
		if r.Err != nil {
			return nil, r.Err
		}
		if len(r.Rows) == 0 {
			return nil, nil
		}
		var row []string
		for _, v := range r.Rows[0] {
			row = append(row, string(v))
		}
		return row, nil
	}
	for _, c := range cases {
		vars := c.vars
		sql := c.st.SQL(&vars)
		text, args, ok := c.st.Param(&vars, nil)
		if !ok {
			t.Errorf("%s: no Param form with every value read", c.name)
			continue
		}
		if strings.Contains(text, "<") {
			t.Errorf("%s: Param text %q has a placeholder for a value", c.name, text)
		}
		simple := run(c.setup, c.check, func() ([]string, error) {
			r, err := pc.Exec(ctx, sql).ReadAll()
			if err != nil {
				return nil, err
			}
			return firstRow(r[0])
		})
		extended := run(c.setup, c.check, func() ([]string, error) {
			values := make([][]byte, len(args))
			for i, a := range args {
				values[i] = []byte(a)
			}
			return firstRow(pc.ExecParams(ctx, text, values, nil, nil, nil).Read())
		})
		if simple.String() != extended.String() {
			t.Errorf("%s:\n  %s\n  did %s\n  %s %q\n  did %s", c.name, sql, simple, text, args, extended)
		}
		t.Logf("%s: %s", c.name, simple)
	}
}

// TestParamTextIsConstant checks that a statement's Param text does not
// depend on its values, so that one prepared statement serves every
// transfer, and that Param says when a value has not been read yet.
func TestParamTextIsConstant(t *testing.T) {
	t.Parallel()
	filled := func(s *ledger.Script) {
		s.Vars = ledger.Vars{TransferID: 7, HasTransferID: true, Read: map[int64]decimal.Decimal{}}
		for _, st := range s.Statements {
			s.Vars.Read[st.Account] = decimal.New(int64(st.Account)*1234, -2)
		}
	}
	for _, s := range ledger.Strategies() {
		a := s.Script(ledger.Transfer{From: 2, To: 1, Amount: ten}, "lockstep")
		b := s.Script(ledger.Transfer{From: 5, To: 900, Amount: decimal.RequireFromString("0.37")}, "lockstep_other")
		filled(a)
		filled(b)
		for i := range a.Statements {
			ta, argsA, okA := a.Statements[i].Param(&a.Vars, nil)
			tb, argsB, okB := b.Statements[i].Param(&b.Vars, nil)
			if !okA || !okB || ta != tb {
				t.Errorf("%s statement %d: Param texts %q (%v) and %q (%v)", s.Name, i+1, ta, okA, tb, okB)
			}
			if fmt.Sprint(argsA) == fmt.Sprint(argsB) && len(argsA) > 0 {
				t.Errorf("%s statement %d: the same arguments %q for two transfers", s.Name, i+1, argsA)
			}
		}
		// Before anything is read, what needs a value read has no Param form.
		fresh := s.Script(ledger.Transfer{From: 2, To: 1, Amount: ten}, "lockstep")
		for i, st := range fresh.Statements {
			_, _, ok := st.Param(&fresh.Vars, nil)
			needs := st.Kind == ledger.InsertEntry || st.Kind == ledger.SetBalance
			if ok == needs {
				t.Errorf("%s statement %d (%s): Param ok = %v with nothing read", s.Name, i+1, fresh.SQL(i), ok)
			}
		}
	}
}
