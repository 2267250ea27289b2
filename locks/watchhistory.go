package locks

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

const (
	// maxHistory bounds the entries a watch keeps: the oldest go first.
	maxHistory = 1000
	// keepTrees is how many of the newest entries keep the tree as it
	// stood: a tree of a busy server is a few hundred kilobytes.
	keepTrees = 100
	// verdictWait is how long an ended deadlock waits for the server's log
	// to name its victim before the watch says the log did not.
	verdictWait = 5 * time.Second
	// chosenFor is how long a session the filter chose counts as the
	// watch's, for a verdict in the server's log about it.
	chosenFor = 5 * time.Minute
)

// history is a watch's entries, and what it remembers of the waits and
// deadlocks still standing.
type history struct {
	opts   WatchOptions
	list   []*WatchEvent
	nextID int
	// waits are the waits standing at the last look, by waiter and start;
	// a nil entry lasted less than the threshold so far.
	waits map[waitKey]*WatchEvent
	// deadlocks are those standing at the last look, and those ended that
	// still wait for the server's verdict or count.
	deadlocks []*deadlockSeen
	counter   int64 // pg_stat_database.deadlocks at the last look; -1 before
	// chosen are the pids the filter chose, and when last.
	chosen map[int32]time.Time
	// logged is whether the server's log names victims; why not, if not.
	logged   bool
	unlogged string
	// foreign counts deadlocks the log reported outside the filter, whose
	// rises of the counter are not the watch's.
	foreign int64
	// made counts the entries ever made, by kind, the dropped ones too.
	made map[string]int
}

type waitKey struct {
	pid   int32
	since time.Time
}

// deadlockSeen is a deadlock entry and the waits it is made of.
type deadlockSeen struct {
	ev      *WatchEvent
	waits   map[waitKey]bool
	pids    map[int32]bool
	ended   time.Time // zero while it stands
	logged  bool      // the server's log gave its verdict
	counted bool
}

func newHistory(opts WatchOptions) history {
	return history{opts: opts, waits: map[waitKey]*WatchEvent{}, counter: -1, chosen: map[int32]time.Time{}, made: map[string]int{}}
}

func (h *history) entries() []WatchEvent {
	out := make([]WatchEvent, len(h.list))
	for i, ev := range h.list {
		out[i] = *ev
	}
	return out
}

func (h *history) add(ev *WatchEvent) *WatchEvent {
	h.nextID++
	ev.ID = h.nextID
	h.made[ev.Kind]++
	h.list = append(h.list, ev)
	if len(h.list) > maxHistory {
		h.list = slices.Delete(h.list, 0, len(h.list)-maxHistory)
	}
	if n := len(h.list) - keepTrees - 1; n >= 0 {
		h.list[n].Tree, h.list[n].TreeAt = Tree{}, time.Time{}
	}
	return ev
}

// remember adds to the history what a look shows — waits that have lasted
// the threshold, deadlocks as they form and end — and merges the server's
// verdicts: its log's reports and its deadlock counter. It returns the
// entries added or changed.
func (h *history) remember(look *Look, counter *int64, verdicts []serverDeadlock) []WatchEvent {
	snap, now := look.Snapshot, look.Taken
	changed := map[*WatchEvent]bool{}
	backends := map[string]Backend{}
	for _, b := range snap.Backends {
		backends[b.Session] = b
	}
	statement := func(name string) string {
		if b, ok := backends[name]; ok {
			return name + ": " + TreeNode{Query: b.Query}.Statement()
		}
		return name
	}
	for _, pid := range look.chosen {
		h.chosen[pid] = now
	}
	for pid, at := range h.chosen {
		if now.Sub(at) > chosenFor {
			delete(h.chosen, pid)
		}
	}

	// Waits, by waiter and when its wait began.
	holders := map[waitKey][]string{}
	keyOf := map[string]waitKey{}
	var order []waitKey
	for _, e := range snap.Graph.Edges {
		since := now
		if e.Lock != nil && e.Lock.WaitStart != nil {
			since = *e.Lock.WaitStart
		}
		k := waitKey{e.WaiterPid, since.Truncate(time.Millisecond)}
		if e.Lock == nil || e.Lock.WaitStart == nil {
			// No start from the server (before 14): the first look's time stands for it.
			for old := range h.waits {
				if old.pid == e.WaiterPid {
					k = old
				}
			}
		}
		if _, ok := holders[k]; !ok {
			order = append(order, k)
		}
		holders[k] = append(holders[k], e.Holder)
		keyOf[e.Waiter] = k
	}
	for old, ev := range h.waits {
		if _, ok := holders[old]; !ok {
			if ev != nil {
				ev.Ended = true
				changed[ev] = true
			}
			delete(h.waits, old)
		}
	}
	for _, k := range order {
		ev := h.waits[k]
		lasted := now.Sub(k.since)
		if lasted < h.opts.Threshold {
			h.waits[k] = nil
			continue
		}
		if ev == nil {
			waiter := snap.nameOf(k.pid)
			for name, wk := range keyOf {
				if wk == k {
					waiter = name
				}
			}
			ev = h.add(&WatchEvent{Time: k.since, Kind: "wait", What: waiter + " waits for " + strings.Join(holders[k], ", ")})
			ev.Statements = append(ev.Statements, statement(waiter))
			for _, hd := range holders[k] {
				ev.Statements = append(ev.Statements, statement(hd))
			}
			h.waits[k] = ev
			changed[ev] = true
		}
		ev.Lasted, ev.Tree, ev.TreeAt = lasted, look.Tree, now
	}

	// Deadlocks, one entry per component as it forms. An entry goes on
	// while every wait it was made of stands (members may join); when one
	// ends, the server (or someone) broke it, and what still stands is
	// another deadlock: the server will break that one too.
	matched := map[*deadlockSeen]bool{}
	for _, c := range snap.Graph.Cycles {
		keys := map[waitKey]bool{}
		pids := map[int32]bool{}
		for _, m := range c.All() {
			if k, ok := keyOf[m]; ok {
				keys[k] = true
				pids[k.pid] = true
			}
		}
		var d *deadlockSeen
		for _, old := range h.deadlocks {
			if !old.ended.IsZero() || matched[old] || !overlaps(old.waits, keys) {
				continue
			}
			if subset(old.waits, keys) {
				d = old
			} else {
				h.end(old, now, snap)
				changed[old.ev] = true
			}
		}
		if d == nil {
			d = &deadlockSeen{ev: h.add(&WatchEvent{Time: now, Kind: "deadlock", Seen: true})}
			h.deadlocks = append(h.deadlocks, d)
			if h.logged {
				d.ev.Verdict = "standing: the server's deadlock check breaks it deadlock_timeout after the last wait began"
			} else {
				d.ev.Verdict = "standing; victim unknown: " + h.unlogged
			}
			if c.LikelyVictim != "" {
				d.ev.Verdict += " (likely victim " + c.LikelyVictim + ")"
			}
		}
		matched[d] = true
		d.waits, d.pids = keys, pids
		ev := d.ev
		ev.What, ev.Sessions, ev.Pids = "DEADLOCK "+c.Describe(), c.All(), sortedPids(pids)
		ev.Statements = ev.Statements[:0]
		for _, s := range c.All() {
			ev.Statements = append(ev.Statements, statement(s))
		}
		ev.Lasted, ev.Tree, ev.TreeAt = now.Sub(ev.Time), look.Tree, now
		changed[ev] = true
	}
	for _, d := range h.deadlocks {
		if d.ended.IsZero() && !matched[d] {
			h.end(d, now, snap)
			changed[d.ev] = true
		}
	}

	// The server's verdicts: its log's reports, each merged with the
	// deadlock it broke, or an entry of its own for one no look saw.
	for _, r := range verdicts {
		d := h.deadlockOf(r)
		if d == nil {
			if !h.ours(r) {
				h.foreign++
				continue
			}
			ev := h.add(&WatchEvent{Time: now, Kind: "deadlock", Ended: true,
				What: "DEADLOCK of pids " + joinPids(r.pids) + " (it formed and was broken between two looks)",
				Pids: r.pids})
			d = &deadlockSeen{ev: ev, pids: map[int32]bool{}, ended: now}
			for _, p := range r.pids {
				d.pids[p] = true
			}
			h.deadlocks = append(h.deadlocks, d)
		}
		d.logged = true
		ev := d.ev
		ev.VictimPid, ev.Detail = r.victim, r.detail
		ev.Victim = fmt.Sprintf("pid %d", r.victim)
		for _, b := range snap.Backends {
			if b.Pid == r.victim {
				ev.Victim = b.Session
			}
		}
		ev.Verdict = fmt.Sprintf("broken by the server: its deadlock check rolled back %s's transaction (40P01 deadlock detected)", ev.Victim)
		switch {
		case r.victim == 0:
			ev.Victim, ev.Verdict = "", "broken by the server (its log names no victim's pid)"
		case d.ev.Seen && !d.pids[r.victim]:
			// The tangle changed between the look and the check: say the
			// server's own cycle, not only the one a look saw.
			ev.Verdict += fmt.Sprintf("; the server's cycle then was pids %s → %d, the tangle having changed since the look",
				strings.ReplaceAll(joinPids(r.pids), ", ", " → "), r.pids[0])
		}
		changed[ev] = true
	}
	for _, d := range h.deadlocks {
		if !d.ended.IsZero() && !d.logged && h.logged && now.Sub(d.ended) > verdictWait && !strings.Contains(d.ev.Verdict, "not by") {
			d.ev.Verdict = fmt.Sprintf("ended at %s, not by the server's deadlock check as far as its log says: a member's wait ended "+
				"(cancelled, timed out, or its session ended)", d.ended.Format("15:04:05"))
			d.logged = true
			changed[d.ev] = true
		}
	}

	// The counter rises when a victim's backend reports it, which is once
	// its transaction ends — seconds later, or never while the
	// application keeps it open. Each rise is given to the oldest ended
	// deadlocks not yet counted; with no log to tell of them, the rest are
	// deadlocks no look saw.
	if counter != nil {
		if h.counter >= 0 && *counter > h.counter {
			rise := *counter - h.counter
			for _, d := range h.deadlocks {
				if rise == 0 {
					break
				}
				if !d.ended.IsZero() && !d.counted {
					d.counted, d.ev.Counted = true, true
					changed[d.ev] = true
					rise--
				}
			}
			absorbed := min(rise, h.foreign)
			rise, h.foreign = rise-absorbed, h.foreign-absorbed
			for ; rise > 0 && !h.logged; rise-- {
				ev := &WatchEvent{Time: now, Kind: "deadlock", Ended: true, Counted: true,
					What:    "DEADLOCK no look saw: pg_stat_database.deadlocks rose (it formed and was broken between two looks)",
					Verdict: "victim unknown: " + h.unlogged}
				if !h.opts.Filter.Empty() {
					ev.Unattributed = true
					ev.What += "; it may be outside the filter: the counter is the database's"
				}
				h.add(ev)
				changed[ev] = true
			}
		}
		h.counter = *counter
	}
	// Forget deadlocks that have their verdict and count, or are long over.
	h.deadlocks = slices.DeleteFunc(h.deadlocks, func(d *deadlockSeen) bool {
		return !d.ended.IsZero() && ((d.logged || !h.logged) && d.counted || now.Sub(d.ended) > chosenFor)
	})

	var out []WatchEvent
	for ev := range changed {
		out = append(out, *ev)
	}
	slices.SortFunc(out, func(a, b WatchEvent) int { return a.ID - b.ID })
	return out
}

// end marks a deadlock over: the server broke it, or someone did.
func (h *history) end(d *deadlockSeen, now time.Time, snap *Snapshot) {
	d.ended = now
	ev := d.ev
	ev.Ended, ev.Lasted = true, now.Sub(ev.Time)
	if d.logged {
		return
	}
	// Whose wait ended: a statement that failed leaves its session idle in
	// an aborted transaction — the victim's, or a cancelled one's.
	var failed []string
	for _, b := range snap.Backends {
		if d.pids[b.Pid] && b.State == "idle in transaction (aborted)" {
			failed = append(failed, b.Session)
		}
	}
	hint := ""
	if len(failed) > 0 {
		hint = "; " + strings.Join(failed, ", ") + " is now idle in an aborted transaction: its statement failed"
	}
	if h.logged {
		ev.Verdict = fmt.Sprintf("ended at %s; the server's log has not named a victim yet%s", now.Format("15:04:05"), hint)
		return
	}
	ev.Verdict = fmt.Sprintf("ended at %s; victim unknown: %s%s", now.Format("15:04:05"), h.unlogged, hint)
}

// deadlockOf is the deadlock entry a report of the server's log is about:
// the one its victim was in, else one it shares a session with.
func (h *history) deadlockOf(r serverDeadlock) *deadlockSeen {
	var shares *deadlockSeen
	for i := len(h.deadlocks) - 1; i >= 0; i-- {
		d := h.deadlocks[i]
		if d.logged {
			continue
		}
		if d.pids[r.victim] {
			return d
		}
		if shares == nil && slices.ContainsFunc(r.pids, func(p int32) bool { return d.pids[p] }) {
			shares = d
		}
	}
	return shares
}

// ours says whether a deadlock the server reports is among the sessions
// the filter chose.
func (h *history) ours(r serverDeadlock) bool {
	if _, ok := h.chosen[r.victim]; ok {
		return true
	}
	return slices.ContainsFunc(r.pids, func(p int32) bool { _, ok := h.chosen[p]; return ok })
}

func overlaps(a, b map[waitKey]bool) bool {
	for k := range a {
		if b[k] {
			return true
		}
	}
	return false
}

func subset(a, b map[waitKey]bool) bool {
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func sortedPids(pids map[int32]bool) []int32 {
	out := make([]int32, 0, len(pids))
	for p := range pids {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

func joinPids(pids []int32) string {
	s := make([]string, len(pids))
	for i, p := range pids {
		s[i] = fmt.Sprint(p)
	}
	return strings.Join(s, ", ")
}
