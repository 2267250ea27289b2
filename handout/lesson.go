package handout

import (
	"fmt"
	"io"
	"strings"

	"github.com/charmbracelet/x/ansi"

	"lockstep/learn"
)

// LessonStep is one action of a lesson as a handout shows it: what it
// did on the server, and the screen once it had (for a question).
type LessonStep struct {
	Action  *learn.Action
	Part    int
	Verdict *learn.Verdict
	Notable []string
	// Screen is the interface's screen after the action, with its escape
	// sequences; "" for none.
	Screen string
}

// Lesson writes a lesson as a Markdown handout: its introduction; each
// part's run; each step's narration; each question with its options, the
// option the server made true, what the server did (the engine's
// explanation), the lesson's why, and the screen at that moment; the
// exercise it ends with.
func Lesson(w io.Writer, l *learn.Lesson, server string, steps []LessonStep) error {
	var b strings.Builder
	title := l.Title
	if l.Number > 0 {
		title = fmt.Sprintf("Lesson %d: %s", l.Number, l.Title)
	}
	fmt.Fprintf(&b, "# %s\n\n", title)
	if l.About != "" {
		fmt.Fprintf(&b, "*%s* (about %d minutes)\n\n", l.About, l.Minutes)
	}
	if l.Intro != "" {
		fmt.Fprintf(&b, "%s\n\n", l.Intro)
	}
	fmt.Fprintf(&b, "Played on %s by lockstep learn; every answer below is what that server did.\n\n", server)
	part, line := -1, -1
	q := 0
	for _, s := range steps {
		if s.Part != part {
			part = s.Part
			p := l.Parts[part]
			what := p.Summary
			if p.Make == nil {
				what = p.Run.Describe()
			}
			fmt.Fprintf(&b, "## Part %d: %s\n\n", part+1, what)
		}
		a := s.Action
		say := a.Say
		if say == "" && a.Kind == learn.SQL {
			say = a.Session + " runs `" + a.SQL + "`."
		}
		if a.Question == nil {
			if a.Line == line && a.Line > 0 {
				continue // one line of the lesson stepping several sessions
			}
			line = a.Line
			fmt.Fprintf(&b, "- %s\n", say)
			for _, n := range s.Notable {
				fmt.Fprintf(&b, "  - %s\n", n)
			}
			continue
		}
		q++
		line = a.Line
		fmt.Fprintf(&b, "\n%s\n\n", say)
		fmt.Fprintf(&b, "**Question %d.** %s\n\n", q, a.Question.Text)
		for i, o := range a.Question.Options {
			fmt.Fprintf(&b, "%d. %s\n", i+1, o.Text)
		}
		b.WriteString("\n")
		if v := s.Verdict; v != nil && v.Decided() {
			k := v.True[0]
			fmt.Fprintf(&b, "**The server:** %d — %s.\n\n", k+1, a.Question.Options[k].Claim)
		} else {
			b.WriteString("**The server** made none of the options true, or several.\n\n")
		}
		if s.Verdict != nil {
			for _, h := range s.Verdict.Happened {
				fmt.Fprintf(&b, "> %s\n", h)
			}
			b.WriteString("\n")
		}
		if a.Question.Why != "" {
			fmt.Fprintf(&b, "**Why.** %s\n\n", a.Question.Why)
		}
		if s.Screen != "" {
			fmt.Fprintf(&b, "```text\n%s\n```\n\n", strings.TrimRight(plainScreen(s.Screen), "\n"))
		}
	}
	if ex := l.Exercise; ex != nil {
		fmt.Fprintf(&b, "\n## Exercise: %s\n\n%s\n\n", ex.Name, ex.Text)
		fmt.Fprintf(&b, "`lockstep learn --edit %s` opens your answer; `lockstep learn --check %s` grades it on the server.\n", ex.Name, ex.Name)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// plainScreen is a screen without its escape sequences, each line's
// trailing blanks gone.
func plainScreen(s string) string {
	lines := strings.Split(ansi.Strip(s), "\n")
	for i := range lines {
		lines[i] = strings.TrimRight(lines[i], " ")
	}
	return strings.Join(lines, "\n")
}
