// PostgreSQL's lock-mode knowledge: the table-level and row-level lock
// modes, their spellings, and the documented conflict tables, as data.

package locks

import (
	"fmt"
	"strings"
)

// TableMode is one of the eight table-level lock modes, weakest first.
type TableMode int

// The eight table-level lock modes, in the order of the PostgreSQL docs
// ("Explicit Locking", Table 13.2), weakest first.
const (
	AccessShare TableMode = iota
	RowShare
	RowExclusive
	ShareUpdateExclusive
	Share
	ShareRowExclusive
	Exclusive
	AccessExclusive
)

// numTableModes is the number of table-level lock modes.
const numTableModes = int(AccessExclusive) + 1

// tableModeSet is a set of table-level modes, one bit per mode.
type tableModeSet uint16

// Single-mode sets, used to write the conflict table like the docs' prose.
const (
	tAS  tableModeSet = 1 << AccessShare
	tRS  tableModeSet = 1 << RowShare
	tRE  tableModeSet = 1 << RowExclusive
	tSUE tableModeSet = 1 << ShareUpdateExclusive
	tS   tableModeSet = 1 << Share
	tSRE tableModeSet = 1 << ShareRowExclusive
	tE   tableModeSet = 1 << Exclusive
	tAE  tableModeSet = 1 << AccessExclusive
)

// tableConflictSets is the one source of the table-level conflict table
// (PostgreSQL docs, Table 13.2 "Conflicting Lock Modes"): for each mode, the
// modes it "conflicts with", as listed in the docs. The relation is symmetric.
// It is returned by value so there is no mutable package state.
func tableConflictSets() [numTableModes]tableModeSet {
	return [numTableModes]tableModeSet{
		AccessShare:          tAE,
		RowShare:             tE | tAE,
		RowExclusive:         tS | tSRE | tE | tAE,
		ShareUpdateExclusive: tSUE | tS | tSRE | tE | tAE,
		Share:                tRE | tSUE | tSRE | tE | tAE,
		ShareRowExclusive:    tRE | tSUE | tS | tSRE | tE | tAE,
		Exclusive:            tRS | tRE | tSUE | tS | tSRE | tE | tAE,
		AccessExclusive:      tAS | tRS | tRE | tSUE | tS | tSRE | tE | tAE,
	}
}

// AllTableModes returns the eight table-level lock modes, weakest first.
// Each call returns a fresh slice.
func AllTableModes() []TableMode {
	modes := make([]TableMode, numTableModes)
	for i := range modes {
		modes[i] = TableMode(i)
	}
	return modes
}

func (m TableMode) valid() bool { return m >= 0 && int(m) < numTableModes }

// tableModeNames returns the SQL spelling, the pg_locks.mode spelling and a
// short note of typical commands taking the mode, or ok=false when m is not
// one of the eight modes.
func (m TableMode) names() (sql, lockName, takenBy string, ok bool) {
	switch m {
	case AccessShare:
		return "ACCESS SHARE", "AccessShareLock",
			"SELECT (any query that only reads the table)", true
	case RowShare:
		return "ROW SHARE", "RowShareLock",
			"SELECT … FOR UPDATE / FOR NO KEY UPDATE / FOR SHARE / FOR KEY SHARE", true
	case RowExclusive:
		return "ROW EXCLUSIVE", "RowExclusiveLock",
			"UPDATE, DELETE, INSERT, MERGE", true
	case ShareUpdateExclusive:
		return "SHARE UPDATE EXCLUSIVE", "ShareUpdateExclusiveLock",
			"VACUUM (without FULL), ANALYZE, CREATE INDEX CONCURRENTLY, REINDEX CONCURRENTLY, CREATE STATISTICS, COMMENT ON, some ALTER TABLE/INDEX", true
	case Share:
		return "SHARE", "ShareLock",
			"CREATE INDEX (without CONCURRENTLY)", true
	case ShareRowExclusive:
		return "SHARE ROW EXCLUSIVE", "ShareRowExclusiveLock",
			"CREATE TRIGGER, some ALTER TABLE", true
	case Exclusive:
		return "EXCLUSIVE", "ExclusiveLock",
			"REFRESH MATERIALIZED VIEW CONCURRENTLY", true
	case AccessExclusive:
		return "ACCESS EXCLUSIVE", "AccessExclusiveLock",
			"LOCK TABLE (default), DROP TABLE, TRUNCATE, REINDEX, CLUSTER, VACUUM FULL, REFRESH MATERIALIZED VIEW, most ALTER TABLE/INDEX", true
	}
	return "", "", "", false
}

// String returns the SQL spelling of the mode, e.g. "ROW EXCLUSIVE"
// (as in LOCK TABLE … IN ROW EXCLUSIVE MODE).
func (m TableMode) String() string {
	if sql, _, _, ok := m.names(); ok {
		return sql
	}
	return fmt.Sprintf("TableMode(%d)", int(m))
}

// LockName returns the spelling used in pg_locks.mode, e.g.
// "RowExclusiveLock", or "" for an invalid mode.
func (m TableMode) LockName() string {
	_, name, _, _ := m.names()
	return name
}

// TakenBy returns a short note of the typical commands that take the mode
// automatically, following the docs' descriptions; "" for an invalid mode.
func (m TableMode) TakenBy() string {
	_, _, taken, _ := m.names()
	return taken
}

// ParseTableMode recognises a table-level lock mode written either in the
// pg_locks.mode spelling ("RowExclusiveLock") or in the SQL spelling
// ("ROW EXCLUSIVE", optionally followed by "MODE"), case-insensitively and
// ignoring surrounding and repeated blanks. Any other text (e.g. "SIReadLock")
// gives false.
func ParseTableMode(s string) (TableMode, bool) {
	norm := strings.Join(strings.Fields(s), " ")
	if f := strings.Fields(norm); len(f) > 1 && strings.EqualFold(f[len(f)-1], "MODE") {
		norm = strings.Join(f[:len(f)-1], " ")
	}
	for m := range TableMode(numTableModes) {
		sql, lockName, _, _ := m.names()
		if strings.EqualFold(norm, sql) || strings.EqualFold(norm, lockName) {
			return m, true
		}
	}
	return 0, false
}

// TableConflicts reports whether a table-level lock in mode wanted, requested
// by one transaction, conflicts with (must wait for) a lock in mode held by
// another transaction, per the docs' Table 13.2. Invalid modes never conflict.
func TableConflicts(held, wanted TableMode) bool {
	if !held.valid() || !wanted.valid() {
		return false
	}
	return tableConflictSets()[held]&(1<<wanted) != 0
}

// RowMode is one of the four row-level lock modes, weakest first.
type RowMode int

// The four row-level lock modes, in the order of the PostgreSQL docs
// ("Explicit Locking", Table 13.3), weakest first.
const (
	ForKeyShare RowMode = iota
	ForShare
	ForNoKeyUpdate
	ForUpdate
)

// numRowModes is the number of row-level lock modes.
const numRowModes = int(ForUpdate) + 1

// rowModeSet is a set of row-level modes, one bit per mode.
type rowModeSet uint8

// Single-mode sets, used to write the row conflict table.
const (
	rKS  rowModeSet = 1 << ForKeyShare
	rS   rowModeSet = 1 << ForShare
	rNKU rowModeSet = 1 << ForNoKeyUpdate
	rU   rowModeSet = 1 << ForUpdate
)

// rowConflictSets is the one source of the row-level conflict table
// (PostgreSQL docs, Table 13.3 "Conflicting Row-Level Locks"): for each mode,
// the modes it conflicts with. The relation is symmetric. It is returned by
// value so there is no mutable package state.
func rowConflictSets() [numRowModes]rowModeSet {
	return [numRowModes]rowModeSet{
		ForKeyShare:    rU,
		ForShare:       rNKU | rU,
		ForNoKeyUpdate: rS | rNKU | rU,
		ForUpdate:      rKS | rS | rNKU | rU,
	}
}

// AllRowModes returns the four row-level lock modes, weakest first.
// Each call returns a fresh slice.
func AllRowModes() []RowMode {
	modes := make([]RowMode, numRowModes)
	for i := range modes {
		modes[i] = RowMode(i)
	}
	return modes
}

func (m RowMode) valid() bool { return m >= 0 && int(m) < numRowModes }

// names returns the SQL spelling and a short note of what takes the mode, or
// ok=false when m is not one of the four modes.
func (m RowMode) names() (sql, takenBy string, ok bool) {
	switch m {
	case ForKeyShare:
		return "FOR KEY SHARE",
			"foreign-key check (INSERT/UPDATE of a referencing row), SELECT … FOR KEY SHARE", true
	case ForShare:
		return "FOR SHARE", "SELECT … FOR SHARE", true
	case ForNoKeyUpdate:
		return "FOR NO KEY UPDATE",
			"UPDATE not changing key columns, SELECT … FOR NO KEY UPDATE", true
	case ForUpdate:
		return "FOR UPDATE",
			"DELETE, UPDATE of key columns, SELECT … FOR UPDATE", true
	}
	return "", "", false
}

// String returns the SQL spelling of the mode, e.g. "FOR NO KEY UPDATE".
func (m RowMode) String() string {
	if sql, _, ok := m.names(); ok {
		return sql
	}
	return fmt.Sprintf("RowMode(%d)", int(m))
}

// TakenBy returns a short note of the statements that take the mode;
// "" for an invalid mode.
func (m RowMode) TakenBy() string {
	_, taken, _ := m.names()
	return taken
}

// ParseRowMode recognises a row-level lock mode, case-insensitively and
// ignoring surrounding and repeated blanks, in
//   - the SQL spelling: "FOR KEY SHARE", "FOR SHARE", "FOR NO KEY UPDATE",
//     "FOR UPDATE" (which is also pgrowlocks' spelling, in title case);
//   - pgrowlocks' spellings for row versions being modified: "No Key Update"
//     (an UPDATE not touching key columns, i.e. FOR NO KEY UPDATE) and
//     "Update" (an UPDATE of key columns or a DELETE, i.e. FOR UPDATE);
//   - older pgrowlocks' multixact member spellings "Key Share" and "Share".
//
// Anything else (e.g. pgrowlocks' "transient upgrade status") gives false.
func ParseRowMode(s string) (RowMode, bool) {
	norm := strings.ToUpper(strings.Join(strings.Fields(s), " "))
	switch norm {
	case "FOR KEY SHARE", "KEY SHARE":
		return ForKeyShare, true
	case "FOR SHARE", "SHARE":
		return ForShare, true
	case "FOR NO KEY UPDATE", "NO KEY UPDATE":
		return ForNoKeyUpdate, true
	case "FOR UPDATE", "UPDATE":
		return ForUpdate, true
	}
	return 0, false
}

// RowConflicts reports whether a row-level lock in mode wanted, requested by
// one transaction, conflicts with (must wait for) a lock in mode held on the
// same row by another transaction, per the docs' Table 13.3. Invalid modes
// never conflict.
func RowConflicts(held, wanted RowMode) bool {
	if !held.valid() || !wanted.valid() {
		return false
	}
	return rowConflictSets()[held]&(1<<wanted) != 0
}

// A ConflictTable is one of the two documented conflict tables, as data for a view to draw.
type ConflictTable struct {
	// Title names the table and its source in the docs.
	Title string
	// Modes are the row and column headers, weakest first, in SQL spelling.
	Modes []string
	// Conflict[i][j] reports whether mode i held conflicts with mode j
	// requested. Both tables are symmetric, so the docs' orientation
	// (requested rows, existing columns) gives the same matrix.
	Conflict [][]bool
}

// TableLevelConflicts returns the table-level conflict table (PostgreSQL
// docs, Table 13.2), built from the same data as TableConflicts.
func TableLevelConflicts() ConflictTable {
	modes := AllTableModes()
	t := ConflictTable{
		Title:    "Table-level lock conflicts (PostgreSQL docs, Table 13.2)",
		Modes:    make([]string, len(modes)),
		Conflict: make([][]bool, len(modes)),
	}
	for i, held := range modes {
		t.Modes[i] = held.String()
		t.Conflict[i] = make([]bool, len(modes))
		for j, wanted := range modes {
			t.Conflict[i][j] = TableConflicts(held, wanted)
		}
	}
	return t
}

// ModeConflicts returns the conflict table that decides a lock of the given
// pg_locks locktype in one of the table-level modes: TableLevelConflicts for
// a table ("relation", or "" when the type is not known), else the same
// matrix — the lock manager decides every heavyweight lock, advisory ones
// included, with one (lock.c's LockConflicts) — titled for what is locked:
// an advisory key or a tuple is no table, and a title saying "table-level"
// of it would be false.
func ModeConflicts(locktype string) ConflictTable {
	t := TableLevelConflicts()
	switch locktype {
	case "", "relation":
		return t
	case "advisory":
		t.Title = "Advisory locks: Table 13.2's modes, no table locked"
	default:
		t.Title = strings.ToUpper(locktype[:1]) + locktype[1:] + " locks: Table 13.2's modes, no table locked"
	}
	return t
}

// RowLevelConflicts returns the row-level conflict table (PostgreSQL docs,
// Table 13.3), built from the same data as RowConflicts.
func RowLevelConflicts() ConflictTable {
	modes := AllRowModes()
	t := ConflictTable{
		Title:    "Row-level lock conflicts (PostgreSQL docs, Table 13.3)",
		Modes:    make([]string, len(modes)),
		Conflict: make([][]bool, len(modes)),
	}
	for i, held := range modes {
		t.Modes[i] = held.String()
		t.Conflict[i] = make([]bool, len(modes))
		for j, wanted := range modes {
			t.Conflict[i][j] = RowConflicts(held, wanted)
		}
	}
	return t
}
