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

func money(d decimal.Decimal) string { return string(appendMoney(nil, d)) }

// appendMoney appends d with two decimals. Amounts and balances (at most two
// decimals, far below 10^13) take a path that allocates nothing; the runner
// renders several per statement, thousands of times a second in a bench.
func appendMoney(b []byte, d decimal.Decimal) []byte {
	exp := d.Exponent()
	if exp > 0 || exp < -2 || d.NumDigits() > 15 {
		return append(b, d.StringFixed(2)...)
	}
	cents := d.CoefficientInt64() * pow10[exp+2]
	if cents < 0 {
		b = append(b, '-')
		cents = -cents
	}
	b = strconv.AppendInt(b, cents/100, 10)
	b = append(b, '.', byte('0'+cents%100/10), byte('0'+cents%10))
	return b
}

var pow10 = [...]int64{1, 10, 100}

// SQL renders the statement with the values in v.
func (st Statement) SQL(v *Vars) string {
	b := make([]byte, 0, 128)
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
		b = append(b, "SELECT pg_advisory_xact_lock(hashtext('"...)
		b = append(b, st.Namespace...)
		b = append(b, "'), "...)
		b = strconv.AppendInt(b, st.Account, 10)
		b = append(b, ')')
	case InsertTransfer:
		t := st.Transfer
		b = append(b, "INSERT INTO transfers (from_account_id, to_account_id, amount) VALUES ("...)
		b = strconv.AppendInt(b, t.From, 10)
		b = append(b, ", "...)
		b = strconv.AppendInt(b, t.To, 10)
		b = append(b, ", "...)
		b = appendMoney(b, t.Amount)
		b = append(b, ") RETURNING id"...)
	case InsertEntry:
		b = append(b, "INSERT INTO entries (transfer_id, account_id, amount) VALUES ("...)
		if v.HasTransferID {
			b = strconv.AppendInt(b, v.TransferID, 10)
		} else {
			b = append(b, "<transfer id>"...)
		}
		b = append(b, ", "...)
		b = strconv.AppendInt(b, st.Account, 10)
		b = append(b, ", "...)
		b = appendMoney(b, st.Amount)
		b = append(b, ')')
	case ReadBalance:
		b = append(b, "SELECT balance FROM accounts WHERE id = "...)
		b = strconv.AppendInt(b, st.Account, 10)
		if st.Lock != "" {
			b = append(b, ' ')
			b = append(b, st.Lock...)
		}
	case SetBalance:
		b = append(b, "UPDATE accounts SET balance = "...)
		if read, ok := v.Read[st.Account]; ok {
			b = appendMoney(b, read.Add(st.Amount))
		} else {
			b = append(b, "<balance read> "...)
			b = appendSigned(b, st.Amount)
		}
		b = append(b, " WHERE id = "...)
		b = strconv.AppendInt(b, st.Account, 10)
		b = append(b, " RETURNING balance"...)
	case AddBalance:
		b = append(b, "UPDATE accounts SET balance = balance "...)
		b = appendSigned(b, st.Amount)
		b = append(b, " WHERE id = "...)
		b = strconv.AppendInt(b, st.Account, 10)
		b = append(b, " RETURNING balance"...)
	default:
		return fmt.Sprintf("-- unknown statement kind %d", st.Kind)
	}
	return string(b)
}

// Param is the statement in the extended query protocol's form: its text
// with $1, $2 … where SQL() writes values, and those values, appended to
// args, as the text of the literals SQL() writes (the server reads them
// with text format). The text is the same for every statement of a kind
// and shape — a driver prepares it once per connection and binds the
// values each time — and it is its own key. Each parameter is cast to the
// type its literal has in SQL() text, or to the column's where the server
// converts either to that, so both forms do the same thing (TestParamIsSQL
// runs both on a server). ok is false while a value the statement needs has
// not been read (SQL() shows <…> there): only SQL() can be sent then.
//
// SQL() stays what users see; Param is how the bench sends it.
func (st Statement) Param(v *Vars, args []string) (text string, _ []string, ok bool) {
	switch st.Kind {
	case Begin:
		switch st.Isolation {
		case "":
			return "BEGIN", args, true
		case "REPEATABLE READ":
			return "BEGIN ISOLATION LEVEL REPEATABLE READ", args, true
		case "SERIALIZABLE":
			return "BEGIN ISOLATION LEVEL SERIALIZABLE", args, true
		}
		return "BEGIN ISOLATION LEVEL " + st.Isolation, args, true
	case Commit, LockTable:
		return st.SQL(v), args, true
	case AdvisoryLock:
		// An integer literal is an int4 when it fits one, which picks the
		// two-key pg_advisory_xact_lock(int4, int4); one that does not is
		// an int8, and the server finds no such function, either way.
		text = "SELECT pg_advisory_xact_lock(hashtext($1::text), $2::integer)"
		if st.Account != int64(int32(st.Account)) {
			text = "SELECT pg_advisory_xact_lock(hashtext($1::text), $2::bigint)"
		}
		return text, append(args, st.Namespace, strconv.FormatInt(st.Account, 10)), true
	case InsertTransfer:
		t := st.Transfer
		return "INSERT INTO transfers (from_account_id, to_account_id, amount) VALUES ($1::bigint, $2::bigint, $3::numeric) RETURNING id",
			append(args, strconv.FormatInt(t.From, 10), strconv.FormatInt(t.To, 10), money(t.Amount)), true
	case InsertEntry:
		if !v.HasTransferID {
			return "", args, false
		}
		return "INSERT INTO entries (transfer_id, account_id, amount) VALUES ($1::bigint, $2::bigint, $3::numeric)",
			append(args, strconv.FormatInt(v.TransferID, 10), strconv.FormatInt(st.Account, 10), money(st.Amount)), true
	case ReadBalance:
		switch st.Lock {
		case "":
			text = "SELECT balance FROM accounts WHERE id = $1::bigint"
		case "FOR UPDATE":
			text = "SELECT balance FROM accounts WHERE id = $1::bigint FOR UPDATE"
		case "FOR NO KEY UPDATE":
			text = "SELECT balance FROM accounts WHERE id = $1::bigint FOR NO KEY UPDATE"
		default:
			text = "SELECT balance FROM accounts WHERE id = $1::bigint " + st.Lock
		}
		return text, append(args, strconv.FormatInt(st.Account, 10)), true
	case SetBalance:
		read, ok := v.Read[st.Account]
		if !ok {
			return "", args, false
		}
		return "UPDATE accounts SET balance = $1::numeric WHERE id = $2::bigint RETURNING balance",
			append(args, money(read.Add(st.Amount)), strconv.FormatInt(st.Account, 10)), true
	case AddBalance:
		// SQL() writes "balance - 1.50" for a negative amount; adding
		// -1.50 is the same numeric sum.
		return "UPDATE accounts SET balance = balance + $1::numeric WHERE id = $2::bigint RETURNING balance",
			append(args, money(st.Amount), strconv.FormatInt(st.Account, 10)), true
	}
	return "", args, false
}

// appendSigned appends "+ 1.50" or "- 1.50".
func appendSigned(b []byte, d decimal.Decimal) []byte {
	if d.IsNegative() {
		b = append(b, "- "...)
	} else {
		b = append(b, "+ "...)
	}
	return appendMoney(b, d.Abs())
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
