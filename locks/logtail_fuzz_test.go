package locks

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
	tail, err := openFileLog(path)
	if err != nil {
		t.Fatal(err)
	}
	defer tail.close()
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
		found, _ := tail.read(context.Background(), nil)
		out = append(out, found...)
	}
	return out
}

func verdicts(ds []serverDeadlock) []string {
	var out []string
	for _, d := range ds {
		out = append(out, fmt.Sprintf("victim %d of %v: %s", d.victim, d.pids, d.detail))
	}
	return out
}

// The reports in deadlockLog: the victim is the pid of the ERROR line,
// the processes are the DETAIL's, the first in the order of the cycle.
func TestLogTailReadsDeadlocks(t *testing.T) {
	ds := readLogIn(t, filepath.Join(t.TempDir(), "log"), []byte(deadlockLog), []byte("2026-12-06 02:34:28.140 UTC [1] LOG:  next\n"))
	if len(ds) != 2 || ds[0].victim != 23956 || !slices.Equal(ds[0].pids, []int32{23956, 23948}) ||
		ds[1].victim != 23961 || !slices.Equal(ds[1].pids, []int32{23961, 23962}) ||
		!strings.HasPrefix(ds[0].detail, "Process 23956 waits for ShareLock on transaction 1016") {
		t.Fatalf("%+v", ds)
	}
	// A prefix without the pid (log_line_prefix '%m '): the DETAIL's first process.
	var p logParser
	ds = p.feed("2026-12-06 02:34:28.131 UTC ERROR:  deadlock detected\n2026-12-06 02:34:28.131 UTC DETAIL:  Process 7 waits for ShareLock on transaction 1; blocked by process 8.\n\tProcess 8 waits for ShareLock on transaction 2; blocked by process 7.\n2026-12-06 02:34:28.131 UTC HINT:  See server log for query details.\n")
	if len(ds) != 1 || ds[0].victim != 7 || !slices.Equal(ds[0].pids, []int32{7, 8}) {
		t.Fatalf("%+v", ds)
	}
}
