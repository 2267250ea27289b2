package sim

import (
	"slices"
	"testing"
)

func TestInt4ArrayRoundTrip(t *testing.T) {
	for _, pids := range [][]int32{nil, {7}, {12, 345, 2147483647}} {
		got, err := parseInt4Array([]byte(int4Array(pids)))
		if err != nil || !slices.Equal(got, pids) {
			t.Errorf("%v → %q → %v, %v", pids, int4Array(pids), got, err)
		}
	}
	for _, bad := range []string{"", "{", "1,2", "{1,x}", "{1,,2}"} {
		if got, err := parseInt4Array([]byte(bad)); err == nil {
			t.Errorf("%q read as %v; want an error", bad, got)
		}
	}
}

func TestHasCycle(t *testing.T) {
	for _, c := range []struct {
		graph map[int32][]int32
		want  bool
	}{
		{map[int32][]int32{1: {2}, 2: nil}, false},
		{map[int32][]int32{1: {2}, 2: {3}, 3: {1}}, true},
		{map[int32][]int32{1: {2, 3}, 2: {3}, 3: nil}, false}, // two paths to one, no cycle
		{map[int32][]int32{1: {1}}, true},
		{map[int32][]int32{1: {9}, 2: {1}}, false}, // 9 is idle: no edges
	} {
		if got := hasCycle(c.graph); got != c.want {
			t.Errorf("hasCycle(%v) = %v, want %v", c.graph, got, c.want)
		}
	}
}
