package handout_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/exp/golden"

	"lockstep/dbtest"
	"lockstep/handout"
	"lockstep/record"
	"lockstep/tui"
)

func lecture(t *testing.T) *record.Recording {
	t.Helper()
	rec, err := record.Open("../record/testdata/lecture-v1.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// The handout of the recorded lecture: the transcript, the locks and the
// graph at both waits and at the deadlock — the lock that blocks marked,
// a table written again only when it changed — the books.
func TestMarkdown(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if err := handout.Markdown(&b, lecture(t)); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{"### ", "deadlock: T1 → T2 → T1", "| T2 | row | accounts id=1 | FOR KEY SHARE | **◀ blocks T1** |", "The locks are as in the table above.",
		"```mermaid", "linkStyle", "the server broke the deadlock: T1 was the victim", "| 1 | alice | 90.00 |", "total 200.00 = 200.00 ok"} {
		if !strings.Contains(md, want) {
			t.Errorf("the handout lacks %q", want)
		}
	}
	if n := strings.Count(md, "| session | lock | on | mode |"); n != 2 {
		t.Errorf("%d lock tables for the lecture's two waits and its deadlock; want 2 (the deadlock's is the second wait's)", n)
	}
	golden.RequireEqual(t, b.Bytes())
}

func moments(t *testing.T) (*tui.Moments, int) {
	t.Helper()
	ms, err := tui.NewMoments(lecture(t), tui.ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	i, err := ms.Resolve("deadlock")
	if err != nil {
		t.Fatal(err)
	}
	return ms, i
}

// The graph at the deadlock, as DOT, is read back by Graphviz itself.
func TestDOTRendersWithGraphviz(t *testing.T) {
	t.Parallel()
	ms, i := moments(t)
	var b bytes.Buffer
	if err := handout.DOT(&b, ms.Snapshot(i), `the lecture's "deadlock"`); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `"T1" -> "T2"`) || !strings.Contains(b.String(), "color=red") {
		t.Errorf("DOT:\n%s", b.String())
	}
	dot, err := exec.LookPath("dot")
	dbtest.Optional(t, err == nil, "Graphviz's dot", "graphviz")
	cmd := exec.Command(dot, "-Tsvg")
	cmd.Stdin = &b
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "</svg>") || !strings.Contains(string(out), "ShareLock on T2&#39;s transaction") {
		t.Errorf("dot -Tsvg: %v\n%.500s", err, out)
	}
}

// The screen at the deadlock as SVG: well-formed XML whose text is the screen's.
func TestSVG(t *testing.T) {
	t.Parallel()
	ms, i := moments(t)
	var b bytes.Buffer
	if err := handout.SVG(&b, ms.Screen(i, 120, 40), 120, 40); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(&b)
	var text strings.Builder
	texts, rects := 0, 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			switch tok.Name.Local {
			case "text":
				texts++
			case "rect":
				rects++
			}
		case xml.CharData:
			text.Write(tok)
		}
	}
	for _, want := range []string{"DEADLOCK", "T1 ──▶ T2 ──▶ T1", "SELECT", "FOR UPDATE", "╭"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("the SVG's text lacks %q", want)
		}
	}
	if texts < 40 || rects < 2 {
		t.Errorf("%d text elements, %d rectangles", texts, rects)
	}
}

// The cast is asciicast v2: a header, then [time, "o", data] frames in time order.
func TestCast(t *testing.T) {
	t.Parallel()
	ms, _ := moments(t)
	frame := func(i int) handout.Frame { return handout.Frame{At: ms.At(i), Screen: ms.Screen(i, 100, 30)} }
	var b bytes.Buffer
	if err := handout.Cast(context.Background(), &b, ms.Len(), frame, 100, 30, "lecture", time.Now()); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&b)
	sc.Buffer(nil, 1<<22)
	if !sc.Scan() {
		t.Fatal("empty cast")
	}
	var h struct {
		Version, Width, Height int
	}
	if err := json.Unmarshal(sc.Bytes(), &h); err != nil || h.Version != 2 || h.Width != 100 || h.Height != 30 {
		t.Fatalf("header %s: %v", sc.Bytes(), err)
	}
	n, last, sawDeadlock := 0, -1.0, false
	for sc.Scan() {
		var f []any
		if err := json.Unmarshal(sc.Bytes(), &f); err != nil || len(f) != 3 || f[1] != "o" {
			t.Fatalf("frame %d: %.100s (%v)", n+1, sc.Bytes(), err)
		}
		at := f[0].(float64)
		if at < last {
			t.Fatalf("frame %d goes back in time: %f < %f", n+1, at, last)
		}
		last = at
		sawDeadlock = sawDeadlock || strings.Contains(f[2].(string), "DEADLOCK")
		n++
	}
	if n != ms.Len() || !sawDeadlock {
		t.Errorf("%d frames of %d moments, deadlock seen %v", n, ms.Len(), sawDeadlock)
	}
}

// A cast stops when its context ends (a signal), frames made so far
// written, none after.
func TestCastStopsOnCancel(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	made := 0
	frame := func(i int) handout.Frame {
		made++
		if i == 2 {
			cancel()
		}
		return handout.Frame{At: time.Duration(i) * time.Second, Screen: "frame"}
	}
	var b bytes.Buffer
	err := handout.Cast(ctx, &b, 1_000_000, frame, 80, 24, "endless", time.Now())
	if !errors.Is(err, context.Canceled) || made != 3 || strings.Count(b.String(), "\n") != 4 {
		t.Errorf("cancelled at frame 3: %v after %d frames; %d lines written", err, made, strings.Count(b.String(), "\n"))
	}
}
