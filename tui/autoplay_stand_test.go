package tui

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/jackc/pgerrcode"

	"lockstep/dbtest"
	"lockstep/ledger"
	"lockstep/scenario"
	"lockstep/sim"
)

// standSetup is a set-up that deadlocks under autoplay.
type standSetup struct {
	name string
	opts func(t *testing.T) Options
}

// transferStand is a transfer set-up at the server's own deadlock_timeout
// and the observer's default poll, as a user starts it.
func transferStand(strategy string, dir sim.Direction, sessions int) func(t *testing.T) Options {
	return func(t *testing.T) Options {
		s, err := ledger.Lookup(strategy)
		if err != nil {
			t.Fatal(err)
		}
		setup := ledger.DefaultSetup()
		setup.Accounts = max(setup.Accounts, sessions)
		// The test server's deadlock_timeout is short; a user's is the
		// default, 1 s, as long as autoplay's beat.
		init := map[string][]string{}
		for i := range sessions {
			init["T"+strconv.Itoa(i+1)] = []string{"SET deadlock_timeout = '1s'"}
		}
		return Options{
			DB: dbtest.Schema(t), Server: "test PostgreSQL",
			Config: sim.Config{Ledger: dbtest.Ledger(t), Strategy: s, Sessions: sessions, Direction: dir, Setup: setup,
				Init: init},
		}
	}
}

// scenarioStand is a built-in scenario, its first permutation autoplay's order.
func scenarioStand(name string) func(t *testing.T) Options {
	return func(t *testing.T) Options {
		sc, err := scenario.LoadBuiltin(name, "")
		if err != nil {
			t.Fatal(err)
		}
		order, err := sc.SessionOrder(1)
		if err != nil {
			t.Fatal(err)
		}
		transfers := transferStand("for-update", sim.Same, 2)(t)
		return Options{
			DB: transfers.DB, Server: "test PostgreSQL", Transfers: transfers.Config, Order: order, ScenarioSummary: name,
			Config: sim.Config{Scenario: sc, ScenarioName: name, Sessions: len(sc.Sessions)},
		}
	}
}

// standRun is what one autoplay run showed of its deadlock, from the
// engine's events as the model took them.
type standRun struct {
	formed, broken   time.Time // the DeadlockFormed event; the 40P01's arrival
	closed           time.Time // the last wait of the cycle began (pg_locks.waitstart)
	victim           string    // the session the server's 40P01 went to
	likely           string    // the victim the screen named while the cycle stood
	paused           bool      // autoplay was paused on the deadlock as it formed
	started          int       // statements sent while it stood
	standing, broke  string    // the screen as it formed, and as it was broken
	settled          string    // the screen once the observer polled after the break
	gone             time.Time // the deadlock left the screen before the 40P01
	goneScreen       string
	goneBy           []string // the events of the burst that took it off
	brokeStatus      string   // the status line as it was broken
	standingExplains bool     // the standing screen named the likely victim
}

// stood is how long the deadlock stood on screen before the server broke it.
func (r standRun) stood() time.Duration {
	if !r.gone.IsZero() {
		return r.gone.Sub(r.formed)
	}
	return r.broken.Sub(r.formed)
}

// autoplayStand plays set-up su with autoplay at its default beat until the
// server breaks the deadlock, and reports what the screen showed.
func autoplayStand(t *testing.T, su standSetup, width, height int) standRun {
	t.Helper()
	m := New(context.Background(), su.opts(t))
	t.Cleanup(m.Close)
	d := newTestDriver(t, m)
	d.start(width, height)
	var r standRun
	d.after = func(msg tea.Msg) {
		em, ok := msg.(eventsMsg)
		if !ok || em.id != m.engID {
			return
		}
		defer func() {
			// The screen shows the deadlock standing until the 40P01.
			if !r.formed.IsZero() && r.broken.IsZero() && r.gone.IsZero() && m.live.cycle == nil {
				r.gone, r.goneScreen = em.events[len(em.events)-1].Time, d.screen()
				for _, ev := range em.events {
					r.goneBy = append(r.goneBy, ev.Kind.String())
				}
			}
		}()
		for _, ev := range em.events {
			if ev.Gen < m.gen {
				continue
			}
			switch {
			case ev.Kind == sim.DeadlockFormed && !ev.Cycle.Distributed && r.formed.IsZero():
				r.formed = ev.Time
				for _, e := range ev.Cycle.Edges {
					if e.Lock != nil && e.Lock.WaitStart != nil && e.Lock.WaitStart.After(r.closed) {
						r.closed = *e.Lock.WaitStart
					}
				}
				// The model took the whole burst: a 40P01 in it has come too.
				r.paused = !m.auto.on && (m.status == statusStanding || m.status == statusBroken)
				if m.live.cycle != nil {
					r.likely = m.live.cycle.LikelyVictim
				}
				r.standing = d.screen()
			case ev.Kind == sim.Started && !r.formed.IsZero() && r.broken.IsZero():
				r.started++
			case ev.Kind == sim.Error && ev.Err.SQLState == pgerrcode.DeadlockDetected && r.broken.IsZero():
				r.broken, r.victim = ev.Time, ev.Session
				r.broke, r.brokeStatus = d.screen(), m.status
			}
		}
	}
	d.guard = 2 * time.Minute // nine sessions take forty beats to close their ring
	d.key("a")
	if !m.auto.on {
		t.Fatal("a should start autoplay")
	}
	d.until("the server breaks the deadlock", func() bool { return !r.broken.IsZero() })
	d.until("the screen settles", d.quiet)
	r.settled = d.screen()
	r.standingExplains = strings.Contains(leftPanes(r.standing), "likely victim "+r.victim)
	return r
}

// checkStand checks what run i of runs showed of its deadlock.
func checkStand(t *testing.T, i, runs int, r standRun) {
	t.Helper()
	ok := r.stood() >= time.Second
	t.Logf("run %d: closed→formed %s, stood on screen %s, victim %s, likely %s, paused %v",
		i+1, r.formed.Sub(r.closed).Round(time.Millisecond), r.stood().Round(time.Millisecond), r.victim, r.likely, r.paused)
	if runs == 1 && !ok {
		t.Errorf("the deadlock stood %s before the server broke it, want ≥ 1s\nas it formed:\n%s", r.stood(), r.standing)
	}
	if !r.gone.IsZero() {
		// A poll saw the server's break before the 40P01 came:
		// the deadlock stood until then.
		t.Logf("run %d: a poll %s before the 40P01 no longer saw the cycle (%v)", i+1,
			r.broken.Sub(r.gone).Round(time.Millisecond), r.goneBy)
	}
	if !r.paused {
		t.Errorf("run %d: autoplay not paused as the deadlock formed (status then shown above)\n%s", i+1, r.standing)
	}
	if r.started > 0 {
		t.Errorf("run %d: autoplay sent %d statements while the deadlock stood", i+1, r.started)
	}
	if r.likely != r.victim || !r.standingExplains {
		t.Errorf("run %d: the screen named %q the likely victim, the server's 40P01 went to %s\n%s", i+1, r.likely, r.victim, r.standing)
	}
	if r.brokeStatus != statusBroken {
		t.Errorf("run %d: as the server broke the deadlock the status said %q", i+1, r.brokeStatus)
	}
	for _, screen := range []string{r.broke, r.settled} {
		s := leftPanes(screen)
		if !strings.Contains(s, r.victim+" was the victim") || !strings.Contains(s, "Why "+r.victim+":") ||
			!strings.Contains(s, r.victim+"'s ran") || !strings.Contains(s, "the first check after the cycle closed") {
			t.Errorf("run %d: the broken deadlock's screen does not say %s was the victim, whose check found it\n%s", i+1, r.victim, screen)
		}
	}
	if i == 0 {
		t.Logf("run 1 as the server broke the deadlock, once polled:\n%s", r.settled)
	}
}

// TestAutoplayDeadlockStands: under autoplay a deadlock stands on screen at
// least 1 s before the server breaks it — from the observer's first sight
// of the cycle to the 40P01's arrival, both engine events — autoplay pauses
// on it, and the screen names the victim before and after the break: the
// session whose deadlock check fired, to which the server sent 40P01. With
// LOCKSTEP_AUTOPLAY_RUNS=N each set-up plays N times, and the test logs the
// standing times and fails when fewer than 19 in 20 stood 1 s.
func TestAutoplayDeadlockStands(t *testing.T) {
	runs := 1
	if v := os.Getenv("LOCKSTEP_AUTOPLAY_RUNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("LOCKSTEP_AUTOPLAY_RUNS=%q: want a count", v)
		}
		runs = n
	}
	// LOCKSTEP_AUTOPLAY_PARALLEL=1 plays a set-up's runs side by side (go
	// test -parallel caps how many): quicker, on a busier machine.
	parallel := os.Getenv("LOCKSTEP_AUTOPLAY_PARALLEL") != ""
	setups := []standSetup{
		{"atomic opposite 2", transferStand("atomic", sim.Opposite, 2)},
		{"atomic ring 3", transferStand("atomic", sim.Ring, 3)},
		{"atomic ring 9", transferStand("atomic", sim.Ring, 9)},
		{"opposite-deadlock", scenarioStand("opposite-deadlock")},
		{"fk-deadlock", scenarioStand("fk-deadlock")},
	}
	if only := os.Getenv("LOCKSTEP_AUTOPLAY_SETUP"); only != "" {
		setups = slices.DeleteFunc(setups, func(su standSetup) bool { return !strings.Contains(su.name, only) })
	}
	for _, su := range setups {
		t.Run(strings.ReplaceAll(su.name, " ", "-"), func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var stood []time.Duration
			held := 0
			t.Run("runs", func(t *testing.T) {
				for i := range runs {
					// Each run its own subtest: its model, and its sessions,
					// close as it ends.
					t.Run(strconv.Itoa(i+1), func(t *testing.T) {
						if parallel {
							t.Parallel()
						}
						r := autoplayStand(t, su, 120, 40)
						mu.Lock()
						stood = append(stood, r.stood())
						ok := r.stood() >= time.Second
						if ok {
							held++
						}
						mu.Unlock()
						checkStand(t, i, runs, r)
					})
				}
			})
			if len(stood) == 0 {
				return // every run failed, each saying why
			}
			slices.Sort(stood)
			// A run that failed before its deadlock (its sessions could not
			// start) counts against the 19 in 20 as well: it stood nowhere.
			t.Logf("%s: %d runs, %d played to the 40P01; stood min %s median %s max %s; %d of %d stood ≥ 1s", su.name, runs, len(stood),
				stood[0].Round(time.Millisecond), stood[len(stood)/2].Round(time.Millisecond), stood[len(stood)-1].Round(time.Millisecond), held, runs)
			if runs > 1 && held*20 < runs*19 {
				t.Errorf("%s: %d of %d deadlocks stood ≥ 1s, want ≥ 19 in 20", su.name, held, runs)
			}
		})
	}
}
