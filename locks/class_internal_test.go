package locks

import "testing"

func TestCycleFrom(t *testing.T) {
	t.Parallel()
	sessions := []string{"T1", "T2", "T3"}
	for _, c := range []struct {
		edges map[string][]string
		want  string
	}{
		{map[string][]string{"r/T2": {"r/T1"}}, ""},
		{map[string][]string{"r/T1": {"r/T2"}, "r/T2": {"r/T1"}}, "T1 → T2 → T1"},
		// A waiter with two holders: the cycle is through the second.
		{map[string][]string{"r/T1": {"r/pid 7", "r/T3"}, "r/T3": {"r/T2"}, "r/T2": {"r/T3"}}, "T3 → T2 → T3"},
		{map[string][]string{"r/T1": {"r/T2"}, "r/T2": {"r/T3"}, "r/T3": {"r/T1"}}, "T1 → T2 → T3 → T1"},
	} {
		if got := cycleFrom(c.edges, "r/", sessions); got != c.want {
			t.Errorf("cycleFrom(%v) = %q, want %q", c.edges, got, c.want)
		}
	}
}
