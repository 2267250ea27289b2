package ledger

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/shopspring/decimal"
)

// Kind is what a statement of a transfer script does.
type Kind int

// The statement kinds transfer scripts are made of.
const (
	Begin          Kind = iota // BEGIN, with an isolation level if any
	Commit                     // COMMIT
	LockTable                  // LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE
	AdvisoryLock               // SELECT pg_advisory_xact_lock(hashtext(schema), account)
	InsertTransfer             // INSERT INTO transfers … RETURNING id
	InsertEntry                // INSERT INTO entries …, using the transfer id read
	ReadBalance                // SELECT balance …, optionally with a row-lock clause
	SetBalance                 // UPDATE … SET balance = <value read ± amount>
	AddBalance                 // UPDATE … SET balance = balance ± amount
)

// Statement is one step of a transfer script.
type Statement struct {
	Kind      Kind
	Account   int64           // the account concerned, if any
	Amount    decimal.Decimal // signed: what the entry records or the update adds
	Lock      string          // ReadBalance: "", "FOR UPDATE", "FOR NO KEY UPDATE"
	Isolation string          // Begin: "", "REPEATABLE READ", "SERIALIZABLE"
	Namespace string          // AdvisoryLock: the schema, hashed into the lock's first key
	Transfer  Transfer        // InsertTransfer: what is recorded
}

// Vars are the values a script's statements have read so far; later
// statements render with them.
type Vars struct {
	TransferID    int64
	HasTransferID bool
	Read          map[int64]decimal.Decimal // balance read by SELECT, per account
	After         map[int64]decimal.Decimal // balance returned by UPDATE, per account
}

// Script is one transfer's statements and what they have read.
type Script struct {
	Strategy   *Strategy
	Transfer   Transfer
	Statements []Statement
	Vars       Vars
}

// Len is the number of statements.
func (s *Script) Len() int { return len(s.Statements) }

// SQL renders statement i with the values read so far, as a user could paste
// it into psql. A value not read yet shows as <…>.
func (s *Script) SQL(i int) string { return s.Statements[i].SQL(&s.Vars) }

// Record takes what statement i returned (its first row, nil if none) into
// the script's values.
func (s *Script) Record(i int, row []any) error { return s.Statements[i].Capture(&s.Vars, row) }

// Reset forgets what was read, for a retry from the start.
func (s *Script) Reset() { s.Vars = Vars{} }

// Transactional says whether the statement list runs inside BEGIN … COMMIT.
func (s *Script) Transactional() bool { return s.Strategy.Transactional }

func money(d decimal.Decimal) string { return d.StringFixed(2) }

// SQL renders the statement with the values in v.
func (st Statement) SQL(v *Vars) string {
	switch st.Kind {
	case Begin:
		if st.Isolation != "" {
			return "BEGIN ISOLATION LEVEL " + st.Isolation
		}
		return "BEGIN"
	case Commit:
		return "COMMIT"
	case LockTable:
		return "LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE"
	case AdvisoryLock:
		return fmt.Sprintf("SELECT pg_advisory_xact_lock(hashtext('%s'), %d)", st.Namespace, st.Account)
	case InsertTransfer:
		t := st.Transfer
		return fmt.Sprintf("INSERT INTO transfers (from_account_id, to_account_id, amount) VALUES (%d, %d, %s) RETURNING id",
			t.From, t.To, money(t.Amount))
	case InsertEntry:
		id := "<transfer id>"
		if v.HasTransferID {
			id = fmt.Sprint(v.TransferID)
		}
		return fmt.Sprintf("INSERT INTO entries (transfer_id, account_id, amount) VALUES (%s, %d, %s)",
			id, st.Account, money(st.Amount))
	case ReadBalance:
		sql := fmt.Sprintf("SELECT balance FROM accounts WHERE id = %d", st.Account)
		if st.Lock != "" {
			sql += " " + st.Lock
		}
		return sql
	case SetBalance:
		value := fmt.Sprintf("<balance read> %s %s", sign(st.Amount), money(st.Amount.Abs()))
		if read, ok := v.Read[st.Account]; ok {
			value = money(read.Add(st.Amount))
		}
		return fmt.Sprintf("UPDATE accounts SET balance = %s WHERE id = %d RETURNING balance", value, st.Account)
	case AddBalance:
		return fmt.Sprintf("UPDATE accounts SET balance = balance %s %s WHERE id = %d RETURNING balance",
			sign(st.Amount), money(st.Amount.Abs()), st.Account)
	}
	return fmt.Sprintf("-- unknown statement kind %d", st.Kind)
}

func sign(d decimal.Decimal) string {
	if d.IsNegative() {
		return "-"
	}
	return "+"
}

// Capture records what the statement returned: the new transfer's id, a
// balance read, or a balance after an update.
func (st Statement) Capture(v *Vars, row []any) error {
	switch st.Kind {
	case InsertTransfer:
		id, err := firstInt(row)
		if err != nil {
			return fmt.Errorf("reading the new transfer's id: %w", err)
		}
		v.TransferID, v.HasTransferID = id, true
	case ReadBalance, SetBalance, AddBalance:
		d, err := firstDecimal(row)
		if err != nil {
			return fmt.Errorf("reading the balance of account %d: %w", st.Account, err)
		}
		m := &v.After
		if st.Kind == ReadBalance {
			m = &v.Read
		}
		if *m == nil {
			*m = map[int64]decimal.Decimal{}
		}
		(*m)[st.Account] = d
	}
	return nil
}

func firstInt(row []any) (int64, error) {
	if len(row) == 0 {
		return 0, fmt.Errorf("no row returned")
	}
	switch x := row[0].(type) {
	case int64:
		return x, nil
	case int32:
		return int64(x), nil
	case string:
		return strconv.ParseInt(strings.TrimSpace(x), 10, 64)
	}
	return 0, fmt.Errorf("unexpected %T", row[0])
}

func firstDecimal(row []any) (decimal.Decimal, error) {
	if len(row) == 0 {
		return decimal.Decimal{}, fmt.Errorf("no row returned (does the account exist?)")
	}
	switch x := row[0].(type) {
	case decimal.Decimal:
		return x, nil
	case string:
		return decimal.NewFromString(strings.TrimSpace(x))
	}
	return decimal.Decimal{}, fmt.Errorf("unexpected %T", row[0])
}
