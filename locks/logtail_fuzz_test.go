package locks

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// A deadlock as the throwaway server logs it (log_line_prefix '%m [%p] '),
// with the messages around it.
const deadlockLog = `2026-12-06 02:34:28.120 UTC [23950] LOG:  process 23950 still waiting for ShareLock on transaction 1016 after 1000.082 ms
2026-12-06 02:34:28.120 UTC [23950] DETAIL:  Process holding the lock: 23948. Wait queue: 23950.
2026-12-06 02:34:28.120 UTC [23950] STATEMENT:  UPDATE hot SET v = v + 1 WHERE id = 3 - 2;
2026-12-06 02:34:28.131 UTC [23956] ERROR:  deadlock detected
2026-12-06 02:34:28.131 UTC [23956] DETAIL:  Process 23956 waits for ShareLock on transaction 1016; blocked by process 23948.
	Process 23948 waits for ExclusiveLock on tuple (0,2) of relation 16805 of database 16586; blocked by process 23956.
	Process 23956: UPDATE hot SET v = v + 1 WHERE id = 1;
	Process 23948: UPDATE hot SET v = v + 1 WHERE id = 3 - 1;
2026-12-06 02:34:28.131 UTC [23956] HINT:  See server log for query details.
2026-12-06 02:34:28.131 UTC [23956] CONTEXT:  while updating tuple (0,1) in relation "hot"
2026-12-06 02:34:28.131 UTC [23956] STATEMENT:  UPDATE hot SET v = v + 1 WHERE id = 1;
2026-12-06 02:34:28.132 UTC [23961] ERROR:  deadlock detected
2026-12-06 02:34:28.132 UTC [23961] DETAIL:  Process 23961 waits for ExclusiveLock on tuple (0,1) of relation 16805 of database 16586; blocked by process 23962.
	Process 23962 waits for ShareLock on transaction 1016; blocked by process 23961.
`

// FuzzLogTail reads anything as the server's log, appended in two writes
// cut anywhere: the tail the watch reads must not panic, and must find the
// same deadlocks as when it reads the whole log at once. A crash found is
// kept in testdata/fuzz/FuzzLogTail.
func FuzzLogTail(f *testing.F) {
	f.Add([]byte(deadlockLog), uint16(0))
	f.Add([]byte(deadlockLog), uint16(400))
	f.Add([]byte(deadlockLog), uint16(len(deadlockLog)-30))
	f.Add([]byte("2026-12-06 02:34:28.131 UTC [1] ERROR:  deadlock detected\n"), uint16(10))
	f.Fuzz(func(t *testing.T, log []byte, cut uint16) {
		at := min(int(cut), len(log))
		dir := t.TempDir()
		whole := readLogIn(t, filepath.Join(dir, "whole.log"), log)
		pieces := readLogIn(t, filepath.Join(dir, "pieces.log"), log[:at], log[at:])
		if !slices.Equal(verdicts(whole), verdicts(pieces)) {
			t.Errorf("read whole: %v; read cut at %d: %v", verdicts(whole), at, verdicts(pieces))
		}
	})
}

// readLogIn appends each piece to a log at path, reading the tail after
// each, and returns every deadlock read.
func readLogIn(t *testing.T, path string, pieces ...[]byte) []serverDeadlock {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tail, err := openLogTail(path)
	if err != nil {
		t.Fatal(err)
	}
	defer tail.f.Close()
	w, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var out []serverDeadlock
	for _, p := range pieces {
		if _, err := w.Write(p); err != nil {
			t.Fatal(err)
		}
		out = append(out, tail.deadlocks()...)
	}
	return out
}

func verdicts(ds []serverDeadlock) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.verdict)
	}
	return out
}
