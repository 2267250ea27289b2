package sim_test

import (
	"slices"
	"testing"

	"lockstep/sim"
)

// Tables reads what a statement asks to read and write, table by table: a
// row-locking SELECT writes nothing, ON CONFLICT DO UPDATE names no target,
// a DELETE's FROM is its target.
func TestTables(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		sql           string
		reads, writes []string
	}{
		{"SELECT count(*) AS on_call FROM anomaly WHERE on_call;", []string{"anomaly"}, nil},
		{"UPDATE anomaly SET on_call = false WHERE id = 1;", []string{"anomaly"}, []string{"anomaly"}},
		{"INSERT INTO anomaly VALUES (3, 1);", nil, []string{"anomaly"}},
		{"INSERT INTO seen SELECT id, value FROM anomaly WHERE id = 1;", []string{"anomaly"}, []string{"seen"}},
		{"SELECT balance FROM accounts WHERE id = 1 FOR NO KEY UPDATE", []string{"accounts"}, nil},
		{"SELECT id FROM jobs ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED", []string{"jobs"}, nil},
		{"DELETE FROM ONLY queue WHERE id = 1", []string{"queue"}, []string{"queue"}},
		{"INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET n = t.n + 1", nil, []string{"t"}},
		{`UPDATE anomaly SET value = (SELECT value FROM seen WHERE who = 't1') + 1 WHERE id = 1;`, []string{"anomaly", "seen"}, []string{"anomaly"}},
		{"COMMIT;", nil, nil},
	} {
		reads, writes := sim.Tables(c.sql)
		if !slices.Equal(reads, c.reads) || !slices.Equal(writes, c.writes) {
			t.Errorf("Tables(%q) = reads %q, writes %q; want %q, %q", c.sql, reads, writes, c.reads, c.writes)
		}
	}
}
