package cli

import (
	"strings"
	"testing"
)

// TestCreatedSecondNoteOnTheThrowawayServer: on the throwaway server the
// second database goes with the server when lockstep exits; the note said
// "lockstep clean --all-mine drops it", which then has nothing to drop.
func TestCreatedSecondNoteOnTheThrowawayServer(t *testing.T) {
	t.Parallel()
	got := createdSecondNote("lockstep_b", "postgres", true)
	if strings.Contains(got, "clean") || !strings.Contains(got, "deleted with it when lockstep exits") {
		t.Errorf("throwaway: %q", got)
	}
	if got := createdSecondNote("lockstep_b", "postgres", false); !strings.Contains(got, "lockstep clean --all-mine drops it") {
		t.Errorf("a named server: %q", got)
	}
}
