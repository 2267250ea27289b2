package isolation_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"lockstep/db"
	"lockstep/dbtest"
	"lockstep/isolation"
	"lockstep/scenario"
)

// TestWaitConcludedWithoutPause: a step the server says waits, while
// nothing else runs and no timer is set, is reported waiting without the
// tester's pause — here s2u when it is asked about again after s3r (it waits
// for s1's open transaction until s1c) — and the output is still the
// tester's. With a lock_timeout in the spec, no wait is concluded early.
func TestWaitConcludedWithoutPause(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		spec  string
		early bool
	}{
		{"ls-settled", true},
		{"ls-settled-timeout", false},
	} {
		t.Run(c.spec, func(t *testing.T) {
			t.Parallel()
			src, err := os.ReadFile(filepath.Join("testdata", c.spec+".spec"))
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(filepath.Join("testdata", c.spec+".out"))
			if err != nil {
				t.Fatal(err)
			}
			s, err := scenario.Parse(c.spec+".spec", src)
			if err != nil {
				t.Fatal(err)
			}
			type conclusion struct {
				step  string
				retry bool
			}
			var (
				mu   sync.Mutex
				seen []conclusion
			)
			var out bytes.Buffer
			d := dbtest.DB(t)
			r := &isolation.Runner{DB: d, Out: &out, RunID: db.RunID("spec-" + c.spec), StuckAfter: 2 * time.Second,
				AppName: "isolation/" + c.spec, Schema: dbtest.SchemaOn(t, d).Schema()}
			isolation.SetConcluded(r, func(step string, retry bool) {
				mu.Lock()
				defer mu.Unlock()
				seen = append(seen, conclusion{step, retry})
			})
			if err := r.Run(db.WithEndTime(context.Background()), s, 0); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				t.Errorf("output differs from the tester's:\n--- want\n%s\n--- got\n%s", want, out.String())
			}
			mu.Lock()
			defer mu.Unlock()
			if early := slices.Contains(seen, conclusion{"s2u", true}); early != c.early {
				t.Errorf("s2u concluded waiting when asked again without a pause: %v, want %v (conclusions %v)", early, c.early, seen)
			}
			if !c.early && len(seen) > 0 {
				t.Errorf("waits concluded without a pause where a timer is set: %v", seen)
			}
		})
	}
}
