package record_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lockstep/record"
	"lockstep/sim"
)

// lecture is a recording of lockstep run (for-update: the lecture's
// deadlock) made by lockstep 0.1.0 in format version 1, kept as it was
// written: later versions must still read it.
const lecture = "testdata/lecture-v1.jsonl"

// Every line of a recording reads back into what wrote it: written again,
// the file is the same byte for byte — every event, every snapshot, every
// change of the sessions, the outcome.
func TestRecordingRoundTrips(t *testing.T) {
	t.Parallel()
	want, err := os.ReadFile(lecture)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := record.Read(bytes.NewReader(want))
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := rec.Write(&got); err != nil {
		t.Fatal(err)
	}
	wl, gl := strings.Split(string(want), "\n"), strings.Split(got.String(), "\n")
	if len(wl) != len(gl) {
		t.Fatalf("%d lines written again, %d recorded", len(gl), len(wl))
	}
	for i := range wl {
		if wl[i] != gl[i] {
			t.Fatalf("line %d differs:\nrecorded: %.300s\nwritten:  %.300s", i+1, wl[i], gl[i])
		}
	}
	// And it is the lecture's run: the deadlock, its victim, the books.
	kinds := map[sim.EventKind]int{}
	for _, ev := range rec.Events() {
		kinds[ev.Kind]++
	}
	out := rec.Outcome()
	if kinds[sim.DeadlockFormed] != 1 || kinds[sim.WaitingForLock] != 2 || out.Tally.Deadlocks != 1 || out.Books == nil || !out.Books.OK() {
		t.Errorf("kinds %v, outcome %+v", kinds, out)
	}
}

// What is not a recording, is cut short, or comes from a newer lockstep is
// refused with one line saying which.
func TestReadRefuses(t *testing.T) {
	t.Parallel()
	good, err := os.ReadFile(lecture)
	if err != nil {
		t.Fatal(err)
	}
	firstLine := strings.SplitN(string(good), "\n", 2)[0]
	cases := map[string]struct {
		data string
		want error
		says string
	}{
		"empty":       {"", record.ErrNotRecording, "empty"},
		"not one":     {"hello\n", record.ErrNotRecording, "no lockstep header"},
		"json, other": {`{"format":"something"}` + "\n", record.ErrNotRecording, "no lockstep header"},
		"truncated":   {string(good[:len(good)-40]), record.ErrTruncated, "ends mid-way"},
		"future":      {strings.Replace(firstLine, `"version":1`, `"version":7`, 1) + "\n", record.ErrFuture, "format version 7"},
		"bad line":    {firstLine + "\n{nonsense\n", record.ErrNotRecording, "line 2"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "r.jsonl")
			if err := os.WriteFile(path, []byte(c.data), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := record.Open(path)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.says) || strings.Contains(err.Error(), "\n") {
				t.Errorf("got %v, want %v saying %q", err, c.want, c.says)
			}
		})
	}
}

// A recording named FILE.gz is compressed, reads back the same, and is
// known for truncated when cut short.
func TestCompressed(t *testing.T) {
	t.Parallel()
	rec, err := record.Open(lecture)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "lecture.jsonl.gz")
	if err := rec.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	again, err := record.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var a, b bytes.Buffer
	if err := rec.Write(&a); err != nil {
		t.Fatal(err)
	}
	if err := again.Write(&b); err != nil {
		t.Fatal(err)
	}
	plain, _ := os.Stat(lecture)
	gz, _ := os.Stat(path)
	if a.String() != b.String() || gz.Size()*5 > plain.Size() {
		t.Errorf("compressed: same %v, %d bytes against %d", a.String() == b.String(), gz.Size(), plain.Size())
	}
	data, _ := os.ReadFile(path)
	cut := filepath.Join(t.TempDir(), "cut.jsonl.gz")
	if err := os.WriteFile(cut, data[:len(data)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := record.Open(cut); !errors.Is(err, record.ErrTruncated) {
		t.Errorf("half a compressed file: %v", err)
	}
}
