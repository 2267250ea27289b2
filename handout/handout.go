// Package handout turns a recording into what a teacher hands out or puts
// on a slide: a Markdown transcript with the locks and the wait-for graph
// at every wait and at the deadlock; the graph alone as Graphviz DOT or
// Mermaid; a screen of the interface as an SVG image; the whole run as an
// asciicast v2 file for asciinema.
package handout

import (
	"bytes"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/jackc/pgerrcode"

	"lockstep/ledger"
	"lockstep/locks"
	"lockstep/record"
	"lockstep/sim"
	"lockstep/transcript"
)

// Markdown writes the recording as a handout: the transcript in the
// isolation tester's format, broken at every wait and deadlock by the
// locks of the sessions involved and the wait-for graph (Mermaid), and the
// books at the end.
func Markdown(w io.Writer, rec *record.Recording) error {
	h := rec.Header
	var b strings.Builder
	fmt.Fprintf(&b, "# lockstep: %s\n\n", h.Run.Name)
	if h.Run.Summary != "" {
		fmt.Fprintf(&b, "%s\n\n", h.Run.Summary)
	}
	command := []string{"lockstep"}
	if h.Command != "tui" {
		command = append(command, h.Command)
	}
	fmt.Fprintf(&b, "Recorded %s on %s by lockstep %s: `%s`.\n\n",
		h.Started.Format("2006-01-02 15:04"), h.Server, h.Lockstep, strings.Join(append(command, h.Args...), " "))
	if rec.Header.Command == "watch" || rec.Header.Command == "chaos" {
		writeLooks(&b, rec)
		_, err := io.WriteString(w, b.String())
		return err
	}
	b.WriteString("## The run\n\n")

	var text bytes.Buffer
	t := transcript.NewText(&text)
	var sessions []sim.SessionInfo
	for _, l := range rec.Lines {
		if l.Sessions != nil {
			sessions = l.Sessions
			break
		}
	}
	t.BeginWith(transcript.Heading{RunID: h.Run.RunID, Name: h.Run.Name, Summary: h.Run.Summary, Scenario: !h.Run.HasLedger,
		Server: h.Server, DeadlockTimeout: h.Run.DeadlockTimeout, Databases: h.Run.Databases, Sessions: sessions, Notes: h.Run.Notes})
	flush := func() {
		if s := strings.TrimRight(text.String(), "\n"); s != "" {
			fmt.Fprintf(&b, "```text\n%s\n```\n\n", s)
		}
		text.Reset()
	}
	waiting := map[string]bool{}
	var last *locks.Snapshot
	var shown string // the last lock table written: the next is written only when it differs
	for _, ev := range rec.Events() {
		if ev.Snapshot != nil {
			last = ev.Snapshot
		}
		t.Event(ev)
		switch {
		case ev.Kind == sim.WaitingForLock && !waiting[ev.Session]:
			waiting[ev.Session] = true
			flush()
			fmt.Fprintf(&b, "### %s — %s waits for %s\n\n", ev.Time.Format("15:04:05.000"), ev.Session, strings.Join(ev.BlockedBy, ", "))
			involved := append([]string{ev.Session}, ev.BlockedBy...)
			writeMoment(&b, pick(ev.Snapshot, last), involved, &shown)
		case ev.Kind == sim.Completed || ev.Kind == sim.Error:
			delete(waiting, ev.Session)
			if ev.Kind == sim.Error && ev.Err.SQLState == pgerrcode.DeadlockDetected {
				flush()
				fmt.Fprintf(&b, "### %s — the server broke the deadlock: %s was the victim\n\n", ev.Time.Format("15:04:05.000"), ev.Session)
				fmt.Fprintf(&b, "%s got `ERROR: %s` (SQLSTATE %s) and its transaction was rolled back; the others went on.\n\n",
					ev.Session, ev.Err.Message, ev.Err.SQLState)
			}
		case ev.Kind == sim.DeadlockFormed:
			flush()
			fmt.Fprintf(&b, "### %s — deadlock: %s\n\n", ev.Time.Format("15:04:05.000"), ev.Cycle)
			for _, e := range ev.Cycle.Edges {
				fmt.Fprintf(&b, "- %s\n", e.Why)
			}
			b.WriteString("\n")
			writeMoment(&b, pick(ev.Snapshot, last), ev.Cycle.Sessions, &shown)
		}
	}
	out := rec.Outcome()
	t.End(out)
	flush()
	b.WriteString("## At the end\n\n")
	writeBooks(&b, out)
	_, err := io.WriteString(w, b.String())
	return err
}

func pick(s, fallback *locks.Snapshot) *locks.Snapshot {
	if s != nil {
		return s
	}
	return fallback
}

// writeMoment writes the locks of the sessions involved — those behind the
// waits first, the lock each waiter asks for and the one that blocks it
// marked — and the wait-for graph, as the snapshot shows them. A lock
// table the same as the last one written (shown) is not written again.
func writeMoment(b *strings.Builder, snap *locks.Snapshot, involved []string, shown *string) {
	if snap == nil {
		return
	}
	in := map[string]bool{}
	for _, s := range involved {
		in[s] = true
	}
	// blocks names the waiters a held lock blocks, by the lock's words.
	blocks := map[string][]string{}
	for _, e := range snap.Graph.Edges {
		switch {
		case e.HeldRow != nil:
			k := fmt.Sprintf("row|%s|%d|%s|%s|%s", e.HeldRow.Session, e.HeldRow.Account, e.HeldRow.Relation, e.HeldRow.Ctid, e.HeldRow.Mode)
			blocks[k] = append(blocks[k], e.Waiter)
		case e.Held != nil:
			k := "lock|" + e.Held.Session + "|" + e.Held.Target() + "|" + e.Held.Mode
			blocks[k] = append(blocks[k], e.Waiter)
		}
	}
	var first, rest []string
	for _, l := range snap.Locks {
		if !in[l.Session] || (l.Type == "virtualxid" && l.Granted) {
			continue
		}
		status := "held"
		who := blocks["lock|"+l.Session+"|"+l.Target()+"|"+l.Mode]
		switch {
		case !l.Granted:
			status = "**WAITING**"
		case len(who) > 0:
			status = "**◀ blocks " + strings.Join(who, ", ") + "**"
		}
		row := fmt.Sprintf("| %s | %s | %s | %s | %s |\n", l.Session, l.Type, cell(l.Target()), cell(l.ModeWords()), status)
		if status != "held" {
			first = append(first, row)
		} else {
			rest = append(rest, row)
		}
	}
	for _, r := range snap.RowLocks {
		if !in[r.Session] || r.Ended {
			continue
		}
		on := r.Target()
		if r.Account == 0 {
			on = "row " + r.Ctid
		}
		status := "held"
		if who := blocks[fmt.Sprintf("row|%s|%d|%s|%s|%s", r.Session, r.Account, r.Relation, r.Ctid, r.Mode)]; len(who) > 0 {
			status = "**◀ blocks " + strings.Join(who, ", ") + "**"
		}
		row := fmt.Sprintf("| %s | row | %s | %s | %s |\n", r.Session, on, r.Mode, status)
		if status != "held" {
			first = append(first, row)
		} else {
			rest = append(rest, row)
		}
	}
	table := "| session | lock | on | mode | |\n| --- | --- | --- | --- | --- |\n" + strings.Join(first, "") + strings.Join(rest, "")
	if table == *shown {
		b.WriteString("The locks are as in the table above.\n")
	} else {
		b.WriteString(table)
		*shown = table
	}
	b.WriteString("\nWho waits for whom (waiter → holder):\n\n```mermaid\n")
	writeMermaid(b, snap)
	b.WriteString("```\n\n")
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// writeBooks writes the balances and the verdict on the books.
func writeBooks(b *strings.Builder, o sim.Outcome) {
	switch {
	case o.ByDatabase != nil:
		labels := make([]string, 0, len(o.ByDatabase))
		for l := range o.ByDatabase {
			labels = append(labels, l)
		}
		sort.Strings(labels)
		for _, l := range labels {
			fmt.Fprintf(b, "Database %s:\n\n", l)
			accountTable(b, o.ByDatabase[l])
		}
		if sim.InSync(o.ByDatabase) {
			b.WriteString("The two databases agree.\n\n")
		} else {
			b.WriteString("**The two databases disagree**: one committed a transfer the other did not.\n\n")
		}
	case o.Accounts != nil:
		accountTable(b, o.Accounts)
		if o.Books != nil {
			fmt.Fprintf(b, "%s\n\n", o.Books.Summary())
		}
	}
	tl := o.Tally
	fmt.Fprintf(b, "Waits %d · deadlocks %d · serialization failures %d · errors %d.\n", tl.Waits, tl.Deadlocks, tl.SerializationFailures, tl.Errors)
}

func accountTable(b *strings.Builder, accounts []ledger.Account) {
	b.WriteString("| account | owner | balance |\n| --- | --- | --- |\n")
	for _, a := range accounts {
		fmt.Fprintf(b, "| %d | %s | %s |\n", a.ID, cell(a.Owner), a.Balance.StringFixed(2))
	}
	b.WriteString("\n")
}

// graphNodes are the sessions a snapshot's graph draws, in order, with
// what each runs.
func graphNodes(snap *locks.Snapshot) []string {
	seen := map[string]bool{}
	var names []string
	add := func(n string) {
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	for _, bk := range snap.Backends {
		add(bk.Session)
	}
	for _, e := range snap.Graph.Edges {
		add(e.Waiter)
		add(e.Holder)
	}
	return names
}

// inCycle says which edges of the graph close a cycle.
func inCycle(snap *locks.Snapshot) map[[2]string]bool {
	out := map[[2]string]bool{}
	for _, c := range snap.Graph.Cycles {
		for _, e := range c.Edges {
			out[[2]string{e.Waiter, e.Holder}] = true
		}
	}
	return out
}

func query(snap *locks.Snapshot, name string) string {
	if b, ok := snap.Backend(name); ok {
		return strings.Join(strings.Fields(b.Query), " ")
	}
	return ""
}

// writeMermaid draws the graph as a Mermaid flowchart: a box per session
// with its statement, an arrow per wait labelled with the lock, the
// cycle's arrows thick and red.
func writeMermaid(b *strings.Builder, snap *locks.Snapshot) {
	b.WriteString("flowchart LR\n")
	ids := map[string]string{}
	for i, n := range graphNodes(snap) {
		ids[n] = fmt.Sprintf("s%d", i)
		label := n
		if q := query(snap, n); q != "" {
			label += "<br/>" + q
		}
		fmt.Fprintf(b, "  %s[\"%s\"]\n", ids[n], mermaidText(label))
	}
	cyc := inCycle(snap)
	var red []string
	for i, e := range snap.Graph.Edges {
		arrow := "-->"
		if e.Queued {
			arrow = "-.->"
		}
		fmt.Fprintf(b, "  %s %s|\"%s\"| %s\n", ids[e.Waiter], arrow, mermaidText(e.Label()), ids[e.Holder])
		if cyc[[2]string{e.Waiter, e.Holder}] {
			red = append(red, fmt.Sprint(i))
		}
	}
	if len(red) > 0 {
		fmt.Fprintf(b, "  linkStyle %s stroke:#d00,stroke-width:3px,color:#d00\n", strings.Join(red, ","))
	}
}

func mermaidText(s string) string {
	return strings.NewReplacer(`"`, "#quot;", "\n", " ").Replace(s)
}

// Mermaid writes the wait-for graph of a snapshot as a Mermaid flowchart in
// a Markdown code block.
func Mermaid(w io.Writer, snap *locks.Snapshot) error {
	var b strings.Builder
	b.WriteString("```mermaid\n")
	writeMermaid(&b, snap)
	b.WriteString("```\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// DOT writes the wait-for graph of a snapshot for Graphviz: a box per
// session with its statement, an edge per wait (waiter → holder) labelled
// with the lock, queueing dashed, the cycle's edges thick and red.
func DOT(w io.Writer, snap *locks.Snapshot, title string) error {
	var b strings.Builder
	b.WriteString("digraph waits {\n  rankdir=LR;\n  labelloc=t;\n")
	fmt.Fprintf(&b, "  label=%s;\n", dotString(title))
	b.WriteString("  node [shape=box, fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\", fontsize=10];\n")
	for _, n := range graphNodes(snap) {
		label := n
		if q := query(snap, n); q != "" {
			label += "\n" + q
		}
		fmt.Fprintf(&b, "  %s [label=%s];\n", dotString(n), dotString(label))
	}
	cyc := inCycle(snap)
	for _, e := range snap.Graph.Edges {
		attrs := []string{"label=" + dotString(e.Label())}
		if e.Queued {
			attrs = append(attrs, "style=dashed")
		}
		if cyc[[2]string{e.Waiter, e.Holder}] {
			attrs = append(attrs, "color=red", "fontcolor=red", "penwidth=2.5")
		}
		fmt.Fprintf(&b, "  %s -> %s [%s];\n", dotString(e.Waiter), dotString(e.Holder), strings.Join(attrs, ", "))
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// dotString quotes s as a DOT string, its line breaks as \n.
func dotString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}

// writeLooks writes a recorded watch: every tree of waits it saw, when it
// changed, with its graph; then its history.
func writeLooks(b *strings.Builder, rec *record.Recording) {
	b.WriteString("## Who waited for whom\n\n")
	last, note := "", ""
	var history []locks.WatchEvent
	for _, l := range rec.Lines {
		if l.Note != "" {
			note = l.Note
		}
		if l.Look == nil {
			continue
		}
		history = locks.MergeHistory(history, l.Look.New...)
		tree := l.Look.Tree.Draw(l.Look.Taken)
		if shape := treeShape(l.Look.Tree); shape == last || len(l.Look.Tree.Roots) == 0 {
			last = shape
			continue
		} else {
			last = shape
		}
		fmt.Fprintf(b, "### %s", l.Look.Taken.Format("15:04:05.000"))
		if note != "" {
			fmt.Fprintf(b, " — %s", note)
		}
		fmt.Fprintf(b, "\n\n```text\n%s```\n\n```mermaid\n", tree)
		writeMermaid(b, l.Look.Snapshot)
		b.WriteString("```\n\n")
	}
	b.WriteString("## History\n\n")
	if len(history) == 0 {
		b.WriteString("No wait lasted the threshold; no deadlock.\n")
	}
	for _, ev := range history {
		fmt.Fprintf(b, "- %s %s\n", ev.Time.Format("15:04:05.000"), ev.What)
		if ev.Verdict != "" {
			fmt.Fprintf(b, "  — %s\n", ev.Verdict)
		}
		for _, s := range ev.Statements {
			fmt.Fprintf(b, "  - `%s`\n", s)
		}
		if ev.Detail != "" {
			fmt.Fprintf(b, "  - the server: %s\n", strings.ReplaceAll(ev.Detail, "\n", " "))
		}
	}
	if note != "" {
		fmt.Fprintf(b, "\nAt the end: %s\n", note)
	}
}

// treeShape is a tree without its ages: who waits for whom, on what.
func treeShape(t locks.Tree) string {
	var b strings.Builder
	t.Walk(func(n *locks.TreeNode, d int) { fmt.Fprintf(&b, "%d %s %s %s|", d, n.Session, n.Lock, n.Query) })
	return b.String() + strings.Join(t.Cycles, ",")
}
