package record_test

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"lockstep/handout"
	"lockstep/record"
	"lockstep/tui"
)

// FuzzRead reads anything as a recording. What Read takes, every reader of
// recordings must take without a panic: the replay's moments and each
// moment's screen (replay, export --svg and --cast), the Markdown handout,
// the wait-for graph of each snapshot (--dot, --mermaid), the outcome, and
// writing it again. Seeded with the checked-in recordings; a crash found is
// kept in testdata/fuzz/FuzzRead.
func FuzzRead(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.jsonl")
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		// The header and a few lines: small inputs mutate faster.
		for n, i := 0, 0; i < len(b); i++ {
			if b[i] == '\n' {
				if n++; n == 4 {
					f.Add(b[:i+1])
					break
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := record.Read(bytes.NewReader(data))
		if err != nil {
			return
		}
		_ = rec.Outcome()
		_ = rec.Write(io.Discard)
		_ = handout.Markdown(io.Discard, rec)
		ms, err := tui.NewMoments(rec, tui.ReplayOptions{})
		if err != nil {
			return
		}
		for _, at := range []string{"start", "end", "deadlock", "1"} {
			_, _ = ms.Resolve(at)
		}
		for i := 0; i < ms.Len() && i < 50; i++ {
			_ = ms.What(i)
			_ = ms.At(i)
			_ = ms.Screen(i, 80, 24)
			if snap := ms.Snapshot(i); snap != nil {
				_ = handout.DOT(io.Discard, snap, "t")
				_ = handout.Mermaid(io.Discard, snap)
			}
		}
	})
}
