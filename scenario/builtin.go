package scenario

import (
	"embed"
	"fmt"
	"path"
	"sort"
	"strings"
)

// builtinFS holds the built-in scenarios. A scenario may contain
// {{ISOLATION}}, replaced by the isolation level it is run at, and says in
// its header comments what it shows ("# summary: …") and what PostgreSQL
// does at each level ("# outcome read committed: …").
//
//go:embed builtin/*.spec
var builtinFS embed.FS

// IsolationLevels are the levels a scenario can be run at, weakest first.
func IsolationLevels() []string {
	return []string{"read committed", "repeatable read", "serializable"}
}

// Builtin is one scenario of the built-in library.
type Builtin struct {
	Name    string
	Summary string
	// Outcomes says what PostgreSQL does at each isolation level, for
	// scenarios that take one; each starts "anomaly:" or "prevented:".
	Outcomes map[string]string
	source   string
}

// Builtins lists the built-in scenarios by name.
func Builtins() []Builtin {
	entries, _ := builtinFS.ReadDir("builtin")
	var out []Builtin
	for _, e := range entries {
		src, _ := builtinFS.ReadFile(path.Join("builtin", e.Name()))
		b := Builtin{Name: strings.TrimSuffix(e.Name(), ".spec"), source: string(src), Outcomes: map[string]string{}}
		for _, line := range strings.Split(b.source, "\n") {
			if rest, ok := strings.CutPrefix(line, "# summary: "); ok {
				b.Summary = rest
			}
			if rest, ok := strings.CutPrefix(line, "# outcome "); ok {
				if level, outcome, ok := strings.Cut(rest, ": "); ok {
					b.Outcomes[level] = outcome
				}
			}
		}
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// TakesIsolation says whether the scenario is run at a chosen isolation level.
func (b Builtin) TakesIsolation() bool { return strings.Contains(b.source, "{{ISOLATION}}") }

// ParseIsolation reads a level as "repeatable read", "repeatable-read" or "REPEATABLE READ".
func ParseIsolation(s string) (string, error) {
	level := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), "-", " "))
	for _, l := range IsolationLevels() {
		if level == l {
			return l, nil
		}
	}
	return "", fmt.Errorf("unknown isolation level %q: use read-committed, repeatable-read or serializable", s)
}

// Expected is what PostgreSQL's documentation says built-in scenario name
// does at an isolation level ("" is read committed): "at SERIALIZABLE:
// prevented: …". It is "" for a file, or a scenario that takes no level.
func Expected(name, isolation string) string {
	level := "read committed"
	if isolation != "" {
		var err error
		if level, err = ParseIsolation(isolation); err != nil {
			return ""
		}
	}
	for _, b := range Builtins() {
		if outcome, ok := b.Outcomes[level]; ok && b.Name == name {
			return "at " + strings.ToUpper(level) + ": " + outcome
		}
	}
	return ""
}

// LoadBuiltin parses scenario name, at isolation level (read committed when
// empty) for scenarios that take one.
func LoadBuiltin(name, isolation string) (*Spec, error) {
	for _, b := range Builtins() {
		if b.Name != name {
			continue
		}
		level := "read committed"
		if isolation != "" {
			var err error
			if level, err = ParseIsolation(isolation); err != nil {
				return nil, err
			}
		}
		src := strings.ReplaceAll(b.source, "{{ISOLATION}}", strings.ToUpper(level))
		return Parse(name+".spec", []byte(src))
	}
	var names []string
	for _, b := range Builtins() {
		names = append(names, b.Name)
	}
	return nil, fmt.Errorf("no scenario or file %q: the built-in scenarios are %s (see lockstep scenarios)", name, strings.Join(names, ", "))
}

// fixFamilies are the built-in scenarios that show a problem, each followed
// by its fixes, in the order the interface's f key cycles them.
var fixFamilies = [][]string{
	{"coupled", "coupled-ordered", "coupled-lock-timeout", "coupled-2pc", "coupled-2pc-interrupted"},
	{"ddl-queue", "ddl-queue-lock-timeout", "ddl-queue-idle-timeout"},
	{"job-queue", "job-queue-nowait", "job-queue-skip-locked"},
	{"pooler-advisory", "pooler-advisory-xact"},
}

// FixFamily is the scenario name belongs to, the problem first and then its
// fixes; nil when name has no fixes.
func FixFamily(name string) []string {
	for _, f := range fixFamilies {
		for _, n := range f {
			if n == name {
				return f
			}
		}
	}
	return nil
}

// WithFix is the scenario of name's family that applies fix ("lock-timeout"
// for ddl-queue is ddl-queue-lock-timeout; "none" is the problem itself).
func WithFix(name, fix string) (string, error) {
	family := FixFamily(name)
	if family == nil {
		return "", fmt.Errorf("--fix %s: scenario %s has no fixes; the ones that do: %s", fix, name, strings.Join(Problems(), ", "))
	}
	if fix == "none" {
		return family[0], nil
	}
	var fixes []string
	for _, n := range family[1:] {
		f := strings.TrimPrefix(n, family[0]+"-")
		if f == fix {
			return n, nil
		}
		fixes = append(fixes, f)
	}
	return "", fmt.Errorf("--fix %s: the fixes of %s are none, %s", fix, family[0], strings.Join(fixes, ", "))
}

// Problems are the built-in scenarios that have fixes (each the first of its family).
func Problems() []string {
	var out []string
	for _, f := range fixFamilies {
		out = append(out, f[0])
	}
	return out
}

// NeedsPooler says whether built-in scenario name runs its sessions through
// a transaction-pooling PgBouncer ("# pooler: transaction" in its header).
func NeedsPooler(name string) bool {
	for _, b := range Builtins() {
		if b.Name == name {
			return strings.Contains(b.source, "\n# pooler: transaction\n")
		}
	}
	return false
}
