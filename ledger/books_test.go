package ledger_test

import (
	"context"
	"strings"
	"testing"

	"github.com/shopspring/decimal"

	"lockstep/dbtest"
	"lockstep/ledger"
)

// TestCheckBooksFindsHandMadeDamage breaks fresh ledgers by hand, one way
// each, and checks that the books say so.
func TestCheckBooksFindsHandMadeDamage(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		damage string
		want   []string
		lost   bool
	}{
		"a missing entry": {
			`INSERT INTO transfers (id, from_account_id, to_account_id, amount) VALUES (100, 1, 2, 10);
			 INSERT INTO entries (transfer_id, account_id, amount) VALUES (100, 1, -10);
			 UPDATE accounts SET balance = balance - 10 WHERE id = 1`,
			[]string{"transfer 100 has 1 entries summing to -10.00", "total 190.00 ≠ 200.00: 10.00 lost"}, false,
		},
		"a changed balance": {
			`UPDATE accounts SET balance = 123.45 WHERE id = 2`,
			[]string{"account 2 holds 123.45 but its entries say 100.00", "23.45 created", "a lost update"}, true,
		},
		"a lone transfer": {
			`INSERT INTO transfers (id, from_account_id, to_account_id, amount) VALUES (7, 2, 1, 5)`,
			[]string{"transfer 7 has 0 entries summing to 0.00"}, false,
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			d := dbtest.Fresh(t, ledger.DefaultSetup())
			ctx := context.Background()
			conn, err := d.Connect(ctx, "lockstep/test")
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			if b, err := ledger.CheckBooks(ctx, conn); err != nil || !b.OK() {
				t.Fatalf("a fresh ledger: %v %s", err, b.Summary())
			}
			if _, err := conn.Exec(ctx, c.damage); err != nil {
				t.Fatal(err)
			}
			b, err := ledger.CheckBooks(ctx, conn)
			if err != nil {
				t.Fatal(err)
			}
			if b.OK() || b.LostUpdate() != c.lost {
				t.Fatalf("books OK=%v lost update=%v: %s", b.OK(), b.LostUpdate(), b.Summary())
			}
			for _, w := range c.want {
				if !strings.Contains(b.Summary(), w) {
					t.Errorf("summary %q lacks %q", b.Summary(), w)
				}
			}
		})
	}
}

// TestBooksBrief: the short verdict names what is wrong, never the totals
// alone when they agree but the books do not, and marks that there is more.
func TestBooksBrief(t *testing.T) {
	t.Parallel()
	d := func(s string) decimal.Decimal { return decimal.RequireFromString(s) }
	cases := []struct {
		b    ledger.Books
		want string
	}{
		{ledger.Books{Opening: d("200"), Total: d("200")}, "total 200.00 ok"},
		{ledger.Books{Opening: d("200"), Total: d("200"), Drift: []ledger.Drift{{Account: 1, Balance: d("90"), Expected: d("80")}, {Account: 2, Balance: d("110"), Expected: d("120")}}}, "a lost update …"},
		{ledger.Books{Opening: d("200"), Total: d("210"), Drift: []ledger.Drift{{Account: 1, Balance: d("90"), Expected: d("80")}}}, "a lost update …"},
		{ledger.Books{Opening: d("200"), Total: d("190"), BadTransfers: []ledger.BadTransfer{{Transfer: 3, Entries: 1, Sum: d("-10")}}}, "10.00 lost …"},
		{ledger.Books{Opening: d("200"), Total: d("200"), BadTransfers: []ledger.BadTransfer{{Transfer: 7, Entries: 0}}}, "transfer 7 has 0 entries"},
		{ledger.Books{Opening: d("200"), Total: d("200"), UnderWay: true, Drift: []ledger.Drift{{Account: 1, Balance: d("100"), Expected: d("90")}, {Account: 2, Balance: d("100"), Expected: d("110")}}}, "a transfer partly committed …"},
	}
	for _, c := range cases {
		if got := c.b.Brief(); got != c.want {
			t.Errorf("%s: brief %q, want %q", c.b.Summary(), got, c.want)
		}
	}
}
