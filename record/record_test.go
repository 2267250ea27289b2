package record_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"lockstep/record"
	"lockstep/sim"
)

// lecture is a recording of lockstep run (for-update: the lecture's
// deadlock) made by lockstep 0.1.0 in format version 1, which wrote event
// kinds and states as numbers; lectureV2 is the same run recorded in format
// version 2, which writes them by name. Both are kept as they were written:
// later versions must still read them.
const (
	lecture   = "testdata/lecture-v1.jsonl"
	lectureV2 = "testdata/lecture-v2.jsonl"
)

// Every line of a recording reads back into what wrote it: written again,
// the file is the same byte for byte — every event, every snapshot, every
// change of the sessions, the outcome.
func TestRecordingRoundTrips(t *testing.T) {
	t.Parallel()
	for _, path := range []string{lectureV2, lecture} {
		want, err := os.ReadFile(path)
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
		if path == lecture {
			// Version 1 is written again as version 2: the same lines but for
			// the names of kinds and states, and read back the same.
			again, err := record.Read(bytes.NewReader(got.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(again.Lines, rec.Lines) {
				t.Errorf("%s read back from version 2 differs", path)
			}
			for _, old := range []string{`"Kind":2,`, `"State":1,`} {
				if strings.Contains(got.String(), old) {
					t.Errorf("version 2 still writes %s", old)
				}
			}
			for _, name := range []string{`"Kind":"completed"`, `"State":"in transaction"`, `"Kind":"deadlock"`} {
				if !strings.Contains(got.String(), name) {
					t.Errorf("version 2 lacks %s", name)
				}
			}
			want = []byte(strings.Replace(string(want), `"version":1`, `"version":2`, 1))
			var v2 bytes.Buffer
			if err := again.Write(&v2); err != nil || v2.String() != got.String() {
				t.Errorf("version 2 does not round-trip: %v", err)
			}
			want = v2.Bytes()
		}
		wl, gl := strings.Split(string(want), "\n"), strings.Split(got.String(), "\n")
		if len(wl) != len(gl) {
			t.Fatalf("%s: %d lines written again, %d recorded", path, len(gl), len(wl))
		}
		for i := range wl {
			if wl[i] != gl[i] {
				t.Fatalf("%s: line %d differs:\nrecorded: %.300s\nwritten:  %.300s", path, i+1, wl[i], gl[i])
			}
		}
		// And it is the lecture's run: the deadlock, its victim, the books.
		kinds := map[sim.EventKind]int{}
		for _, ev := range rec.Events() {
			kinds[ev.Kind]++
		}
		out := rec.Outcome()
		if kinds[sim.DeadlockFormed] != 1 || kinds[sim.WaitingForLock] != 2 || out.Tally.Deadlocks != 1 || out.Books == nil || !out.Books.OK() {
			t.Errorf("%s: kinds %v, outcome %+v", path, kinds, out)
		}
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
		"no kind":     {firstLine + "\n" + `{"t":1,"event":{"Kind":"exploded"}}` + "\n", record.ErrNotRecording, `line 2 is not a recording line: unknown event kind "exploded"`},
		"kind 99":     {firstLine + "\n" + `{"t":1,"event":{"Kind":99}}` + "\n", record.ErrNotRecording, "line 2 is not a recording line: unknown event kind 99"},
		"session 9": {firstLine + "\n" + `{"t":1,"event":{"Kind":"completed","Session":"T9","Index":8}}` + "\n",
			record.ErrNotRecording, "line 2 holds an event of session 8; the run has 2"},
		"sessions": {firstLine + "\n" + `{"t":1,"sessions":[` + strings.Repeat(`{},`, 40) + `{}]}` + "\n", record.ErrNotRecording, "line 2 has 41 sessions"},
		"look":     {firstLine + "\n" + `{"t":1,"look":{"watched":1}}` + "\n", record.ErrNotRecording, "line 2 is a look without its snapshot"},
	}
	// Each kind of event that carries a payload is refused without it, on
	// its line (issue 25: each of these panicked the replay and export).
	for kind, lacks := range map[string]string{"error": "its error", "connection lost": "its cause", "deadlock": "its cycle",
		"polled": "its snapshot", "notice": "its message", "books": "its balances", "resolved": "its prepared transaction",
		"observer lost": "its cause", "stalled": "why it stalled"} {
		cases["lacking "+kind] = struct {
			data string
			want error
			says string
		}{firstLine + "\n" + `{"t":1,"event":{"Kind":"started","Session":"T1"}}` + "\n" + `{"t":2,"event":{"Kind":"` + kind + `","Session":"T1"}}` + "\n",
			record.ErrNotRecording, "line 3 holds a " + kind + " event without " + lacks}
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

// An endless file (/dev/zero) is refused after one line's limit, not read
// into memory; so is a line that long in a real recording.
func TestReadRefusesWhatIsTooLarge(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/dev/zero"); err == nil {
		_, err := record.Open("/dev/zero")
		if !errors.Is(err, record.ErrNotRecording) || !strings.Contains(err.Error(), "no lockstep header") {
			t.Errorf("/dev/zero: %v", err)
		}
	}
	good, err := os.ReadFile(lectureV2)
	if err != nil {
		t.Fatal(err)
	}
	firstLine := strings.SplitN(string(good), "\n", 2)[0]
	long := firstLine + "\n" + `{"t":1,"note":"` + strings.Repeat("x", record.MaxLine) + `"}` + "\n"
	_, err = record.Read(strings.NewReader(long))
	if !errors.Is(err, record.ErrTooLarge) || !strings.Contains(err.Error(), "line 2 is longer than 64 MB") {
		t.Errorf("a line too long: %v", err)
	}
}
