package learn

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestProgressSurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	p, note, err := LoadProgress(dir)
	if err != nil || note != "" {
		t.Fatalf("fresh: %v %q", err, note)
	}
	all, err := Builtins()
	if err != nil {
		t.Fatal(err)
	}
	lp := p.Lesson(all[0])
	lp.Answered("0-x", true)
	lp.Answered("0-x", false) // only the first answer counts
	lp.Answered("1-y", false)
	lp.Done, lp.Reached = true, 9
	p.Exercise("transfer").Tries = 2
	if err := p.Save(); err != nil {
		t.Fatal(err)
	}
	back, note, err := LoadProgress(dir)
	if err != nil || note != "" {
		t.Fatalf("again: %v %q", err, note)
	}
	got := back.Lessons[all[0].Key()]
	if right, asked := got.Score(); right != 1 || asked != 2 || !got.Done || got.Reached != 9 {
		t.Fatalf("read back %d/%d done %v reached %d", right, asked, got.Done, got.Reached)
	}
	if back.Exercises["transfer"].Tries != 2 {
		t.Fatal("the exercise's tries were lost")
	}
	if removed, err := Reset(dir); err != nil || !removed {
		t.Fatalf("reset: %v %v", removed, err)
	}
	if p, _, _ := LoadProgress(dir); len(p.Lessons) != 0 {
		t.Fatal("progress after a reset")
	}
}

func TestDamagedProgressIsSetAside(t *testing.T) {
	for _, content := range []string{"{not json", `{"version": 99}`, "\x00\x01", `{"version":1,"lessons":{"x":null}}`} {
		dir := t.TempDir()
		if err := os.WriteFile(ProgressFile(dir), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		p, note, err := LoadProgress(dir)
		if err != nil {
			t.Fatalf("%q: %v", content, err)
		}
		if strings.HasPrefix(content, `{"version":1`) {
			if note != "" || len(p.Lessons) != 0 {
				t.Fatalf("%q: %q, %d lessons", content, note, len(p.Lessons))
			}
			continue
		}
		if !strings.Contains(note, "was damaged") || strings.Contains(note, "\n") {
			t.Fatalf("%q: note %q", content, note)
		}
		aside, _ := filepath.Glob(ProgressFile(dir) + ".damaged-*")
		if len(aside) != 1 {
			t.Fatalf("%q: set aside as %v", content, aside)
		}
		if b, _ := os.ReadFile(aside[0]); string(b) != content {
			t.Fatalf("%q: the damaged file was changed: %q", content, b)
		}
		if err := p.Save(); err != nil {
			t.Fatalf("%q: saving afresh: %v", content, err)
		}
	}
}

// TestDamagedTwiceKeepsBoth: two damaged files set aside within the same
// second each keep their own name; the second does not replace the first.
func TestDamagedTwiceKeepsBoth(t *testing.T) {
	dir := t.TempDir()
	for _, content := range []string{"{first", "{second"} {
		if err := os.WriteFile(ProgressFile(dir), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := LoadProgress(dir); err != nil {
			t.Fatal(err)
		}
	}
	aside, _ := filepath.Glob(ProgressFile(dir) + ".damaged-*")
	var kept []string
	for _, f := range aside {
		b, _ := os.ReadFile(f)
		kept = append(kept, string(b))
	}
	if len(kept) != 2 || !strings.Contains(strings.Join(kept, " "), "{first") || !strings.Contains(strings.Join(kept, " "), "{second") {
		t.Fatalf("set aside: %v holding %q", aside, kept)
	}
}

func TestStateDir(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", "/tmp/state-here")
	if d, err := StateDir(); err != nil || d != "/tmp/state-here/lockstep" {
		t.Fatalf("%q %v", d, err)
	}
}
