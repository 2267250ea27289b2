package spec_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lockstep/db/dbtest"
	"lockstep/spec"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// TestExpectedOutputs runs every testdata spec that has an expected output
// beside it (NAME.out) on the real server and compares byte for byte. Three
// come from PostgreSQL's own isolation tests, with their expected files;
// the others are lockstep's, each citing the documentation behind it.
func TestExpectedOutputs(t *testing.T) {
	outs, _ := filepath.Glob("testdata/*.out")
	if len(outs) < 3 {
		t.Fatalf("only %d expected outputs", len(outs))
	}
	for _, out := range outs {
		name := strings.TrimSuffix(filepath.Base(out), ".out")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join("testdata", name+".spec"))
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			s, err := spec.Parse(name+".spec", src)
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			// Each spec gets a database of its own: specs create tables with fixed names.
			r := &spec.Runner{DB: dbtest.DB(t), Out: &got, RunID: "spec-" + name, StuckAfter: time.Second}
			err = r.Run(context.Background(), s, 0)
			if err != nil && !errors.Is(err, spec.ErrStuck) {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("output differs from %s:\n--- want\n%s\n--- got\n%s", out, want, got.String())
			}
		})
	}
}
