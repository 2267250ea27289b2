package locks

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// docsTable132 is the PostgreSQL docs' Table 13.2 "Conflicting Lock Modes",
// copied cell by cell: rows are the requested mode, columns the existing mode,
// both in the order ACCESS SHARE, ROW SHARE, ROW EXCL., SHARE UPDATE EXCL.,
// SHARE, SHARE ROW EXCL., EXCL., ACCESS EXCL.
func docsTable132() [8][8]string {
	return [8][8]string{
		//AS  RS   RE   SUE  S    SRE  E    AE
		{" ", " ", " ", " ", " ", " ", " ", "X"}, // ACCESS SHARE
		{" ", " ", " ", " ", " ", " ", "X", "X"}, // ROW SHARE
		{" ", " ", " ", " ", "X", "X", "X", "X"}, // ROW EXCL.
		{" ", " ", " ", "X", "X", "X", "X", "X"}, // SHARE UPDATE EXCL.
		{" ", " ", "X", "X", " ", "X", "X", "X"}, // SHARE
		{" ", " ", "X", "X", "X", "X", "X", "X"}, // SHARE ROW EXCL.
		{" ", "X", "X", "X", "X", "X", "X", "X"}, // EXCL.
		{"X", "X", "X", "X", "X", "X", "X", "X"}, // ACCESS EXCL.
	}
}

// docsTable133 is the PostgreSQL docs' Table 13.3 "Conflicting Row-Level
// Locks", copied cell by cell: rows are the requested mode, columns the
// current mode, both in the order FOR KEY SHARE, FOR SHARE, FOR NO KEY UPDATE,
// FOR UPDATE.
func docsTable133() [4][4]string {
	return [4][4]string{
		//KS  S    NKU  U
		{" ", " ", " ", "X"}, // FOR KEY SHARE
		{" ", " ", "X", "X"}, // FOR SHARE
		{" ", "X", "X", "X"}, // FOR NO KEY UPDATE
		{"X", "X", "X", "X"}, // FOR UPDATE
	}
}

// docsTableOrder lists the table-level modes in the docs' order, written out
// independently of the iota constants' values.
func docsTableOrder() [8]TableMode {
	return [8]TableMode{
		AccessShare, RowShare, RowExclusive, ShareUpdateExclusive,
		Share, ShareRowExclusive, Exclusive, AccessExclusive,
	}
}

// docsRowOrder lists the row-level modes in the docs' order.
func docsRowOrder() [4]RowMode { return [4]RowMode{ForKeyShare, ForShare, ForNoKeyUpdate, ForUpdate} }

func TestTableConflictsMatchDocs(t *testing.T) {
	t.Parallel()
	docs := docsTable132()
	for i, requested := range docsTableOrder() {
		for j, existing := range docsTableOrder() {
			want := docs[i][j] == "X"
			t.Run(fmt.Sprintf("%s_requested_vs_%s_held", requested.LockName(), existing.LockName()), func(t *testing.T) {
				t.Parallel()
				if got := TableConflicts(existing, requested); got != want {
					t.Errorf("TableConflicts(held=%v, wanted=%v) = %v, docs say %v", existing, requested, got, want)
				}
			})
		}
	}
}

func TestRowConflictsMatchDocs(t *testing.T) {
	t.Parallel()
	docs := docsTable133()
	for i, requested := range docsRowOrder() {
		for j, current := range docsRowOrder() {
			want := docs[i][j] == "X"
			t.Run(fmt.Sprintf("%s_requested_vs_%s_held", requested, current), func(t *testing.T) {
				t.Parallel()
				if got := RowConflicts(current, requested); got != want {
					t.Errorf("RowConflicts(held=%v, wanted=%v) = %v, docs say %v", current, requested, got, want)
				}
			})
		}
	}
}

func TestConflictsSymmetric(t *testing.T) {
	t.Parallel()
	for _, a := range AllTableModes() {
		for _, b := range AllTableModes() {
			if TableConflicts(a, b) != TableConflicts(b, a) {
				t.Errorf("table: %v/%v not symmetric", a, b)
			}
		}
	}
	for _, a := range AllRowModes() {
		for _, b := range AllRowModes() {
			if RowConflicts(a, b) != RowConflicts(b, a) {
				t.Errorf("row: %v/%v not symmetric", a, b)
			}
		}
	}
}

func TestInvalidModesNeverConflict(t *testing.T) {
	t.Parallel()
	for _, bad := range []TableMode{-1, 8, 100} {
		if TableConflicts(bad, AccessExclusive) || TableConflicts(AccessExclusive, bad) {
			t.Errorf("TableConflicts with invalid mode %d reported a conflict", bad)
		}
		if bad.LockName() != "" || bad.TakenBy() != "" || bad.String() == "" {
			t.Errorf("invalid TableMode(%d): String=%q LockName=%q TakenBy=%q", bad, bad.String(), bad.LockName(), bad.TakenBy())
		}
	}
	for _, bad := range []RowMode{-1, 4, 100} {
		if RowConflicts(bad, ForUpdate) || RowConflicts(ForUpdate, bad) {
			t.Errorf("RowConflicts with invalid mode %d reported a conflict", bad)
		}
		if bad.TakenBy() != "" || bad.String() == "" {
			t.Errorf("invalid RowMode(%d): String=%q TakenBy=%q", bad, bad.String(), bad.TakenBy())
		}
	}
}

func TestAllModesOrderAndFreshness(t *testing.T) {
	t.Parallel()
	tableOrder, rowOrder := docsTableOrder(), docsRowOrder()
	if got := AllTableModes(); !slices.Equal(got, tableOrder[:]) {
		t.Errorf("AllTableModes() = %v, want %v", got, tableOrder)
	}
	if got := AllRowModes(); !slices.Equal(got, rowOrder[:]) {
		t.Errorf("AllRowModes() = %v, want %v", got, rowOrder)
	}
	m := AllTableModes()
	m[0] = AccessExclusive
	if AllTableModes()[0] != AccessShare {
		t.Error("AllTableModes shares state between calls")
	}
	r := AllRowModes()
	r[0] = ForUpdate
	if AllRowModes()[0] != ForKeyShare {
		t.Error("AllRowModes shares state between calls")
	}
}

func TestTableModeSpellings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode     TableMode
		sql      string
		lockName string
	}{
		{AccessShare, "ACCESS SHARE", "AccessShareLock"},
		{RowShare, "ROW SHARE", "RowShareLock"},
		{RowExclusive, "ROW EXCLUSIVE", "RowExclusiveLock"},
		{ShareUpdateExclusive, "SHARE UPDATE EXCLUSIVE", "ShareUpdateExclusiveLock"},
		{Share, "SHARE", "ShareLock"},
		{ShareRowExclusive, "SHARE ROW EXCLUSIVE", "ShareRowExclusiveLock"},
		{Exclusive, "EXCLUSIVE", "ExclusiveLock"},
		{AccessExclusive, "ACCESS EXCLUSIVE", "AccessExclusiveLock"},
	}
	if len(tests) != len(AllTableModes()) {
		t.Fatalf("spelling table covers %d modes, want %d", len(tests), len(AllTableModes()))
	}
	for _, tc := range tests {
		t.Run(tc.lockName, func(t *testing.T) {
			t.Parallel()
			if got := tc.mode.String(); got != tc.sql {
				t.Errorf("String() = %q, want %q", got, tc.sql)
			}
			if got := tc.mode.LockName(); got != tc.lockName {
				t.Errorf("LockName() = %q, want %q", got, tc.lockName)
			}
			if tc.mode.TakenBy() == "" {
				t.Error("TakenBy() is empty")
			}
			inputs := []string{
				tc.sql,
				tc.lockName,
				strings.ToLower(tc.sql),
				strings.ToLower(tc.lockName),
				strings.ToUpper(tc.lockName),
				"  " + strings.ReplaceAll(tc.sql, " ", "   ") + "\t",
				tc.sql + " MODE",
				strings.ToLower(tc.sql) + " mode",
			}
			for _, in := range inputs {
				got, ok := ParseTableMode(in)
				if !ok || got != tc.mode {
					t.Errorf("ParseTableMode(%q) = %v, %v; want %v, true", in, got, ok, tc.mode)
				}
			}
		})
	}
}

func TestParseTableModeRejects(t *testing.T) {
	t.Parallel()
	tests := []string{
		"", "   ", "MODE", "SIReadLock", "ExclusiveLockX", "ROW", "ACCESS",
		"AccessShare Lock", "FOR UPDATE", "ROW-EXCLUSIVE", "EXCLUSIVE MODE MODE",
	}
	for _, in := range tests {
		t.Run(fmt.Sprintf("%q", in), func(t *testing.T) {
			t.Parallel()
			if got, ok := ParseTableMode(in); ok {
				t.Errorf("ParseTableMode(%q) = %v, true; want false", in, got)
			}
		})
	}
}

func TestRowModeSpellings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode RowMode
		sql  string
	}{
		{ForKeyShare, "FOR KEY SHARE"},
		{ForShare, "FOR SHARE"},
		{ForNoKeyUpdate, "FOR NO KEY UPDATE"},
		{ForUpdate, "FOR UPDATE"},
	}
	if len(tests) != len(AllRowModes()) {
		t.Fatalf("spelling table covers %d modes, want %d", len(tests), len(AllRowModes()))
	}
	for _, tc := range tests {
		t.Run(tc.sql, func(t *testing.T) {
			t.Parallel()
			if got := tc.mode.String(); got != tc.sql {
				t.Errorf("String() = %q, want %q", got, tc.sql)
			}
			if tc.mode.TakenBy() == "" {
				t.Error("TakenBy() is empty")
			}
			if got, ok := ParseRowMode(tc.mode.String()); !ok || got != tc.mode {
				t.Errorf("ParseRowMode(String()) = %v, %v; want %v, true", got, ok, tc.mode)
			}
		})
	}
}

func TestParseRowMode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want RowMode
	}{
		// SQL spellings.
		{"FOR KEY SHARE", ForKeyShare},
		{"FOR SHARE", ForShare},
		{"FOR NO KEY UPDATE", ForNoKeyUpdate},
		{"FOR UPDATE", ForUpdate},
		{"for no key update", ForNoKeyUpdate},
		{"  For   No Key\tUpdate ", ForNoKeyUpdate},
		// pgrowlocks' modes (contrib/pgrowlocks/pgrowlocks.c).
		{"For Key Share", ForKeyShare},
		{"For Share", ForShare},
		{"For No Key Update", ForNoKeyUpdate},
		{"For Update", ForUpdate},
		{"No Key Update", ForNoKeyUpdate}, // plain UPDATE not touching key columns
		{"Update", ForUpdate},             // UPDATE of key columns, or DELETE
		// Older pgrowlocks multixact member spellings.
		{"Key Share", ForKeyShare},
		{"Share", ForShare},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got, ok := ParseRowMode(tc.in)
			if !ok || got != tc.want {
				t.Errorf("ParseRowMode(%q) = %v, %v; want %v, true", tc.in, got, ok, tc.want)
			}
		})
	}
}

func TestParseRowModeRejects(t *testing.T) {
	t.Parallel()
	tests := []string{
		"", "FOR", "NO KEY", "transient upgrade status", "{For Update}",
		"FOR UPDATE NOWAIT", "RowExclusiveLock", "FOR KEY UPDATE", "FORUPDATE",
	}
	for _, in := range tests {
		t.Run(fmt.Sprintf("%q", in), func(t *testing.T) {
			t.Parallel()
			if got, ok := ParseRowMode(in); ok {
				t.Errorf("ParseRowMode(%q) = %v, true; want false", in, got)
			}
		})
	}
}

func TestConflictTablesFromSameData(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		table     ConflictTable
		wantTitle string
		modes     []string
		conflicts func(i, j int) bool
	}{
		{
			name:      "table-level",
			table:     TableLevelConflicts(),
			wantTitle: "Table 13.2",
			modes: []string{"ACCESS SHARE", "ROW SHARE", "ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE",
				"SHARE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE"},
			conflicts: func(i, j int) bool { return docsTable132()[j][i] == "X" },
		},
		{
			name:      "row-level",
			table:     RowLevelConflicts(),
			wantTitle: "Table 13.3",
			modes:     []string{"FOR KEY SHARE", "FOR SHARE", "FOR NO KEY UPDATE", "FOR UPDATE"},
			conflicts: func(i, j int) bool { return docsTable133()[j][i] == "X" },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if !strings.Contains(tc.table.Title, tc.wantTitle) {
				t.Errorf("Title = %q, want it to mention %q", tc.table.Title, tc.wantTitle)
			}
			if !slices.Equal(tc.table.Modes, tc.modes) {
				t.Errorf("Modes = %q, want %q", tc.table.Modes, tc.modes)
			}
			if len(tc.table.Conflict) != len(tc.modes) {
				t.Fatalf("Conflict has %d rows, want %d", len(tc.table.Conflict), len(tc.modes))
			}
			for i := range tc.modes {
				if len(tc.table.Conflict[i]) != len(tc.modes) {
					t.Fatalf("Conflict[%d] has %d cells, want %d", i, len(tc.table.Conflict[i]), len(tc.modes))
				}
				for j := range tc.modes {
					if got, want := tc.table.Conflict[i][j], tc.conflicts(i, j); got != want {
						t.Errorf("Conflict[%d][%d] (%s held, %s requested) = %v, docs say %v",
							i, j, tc.modes[i], tc.modes[j], got, want)
					}
				}
			}
		})
	}
}
