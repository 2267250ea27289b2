package cli_test

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The command line builds a config and hands it to a view: it never reads
// locks itself, so none of its files (tests aside) imports the lock model.
func TestCLIImportsNoLocks(t *testing.T) {
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	module := ""
	for _, line := range strings.Split(string(mod), "\n") {
		if m, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			module = strings.TrimSpace(m)
		}
	}
	if module == "" {
		t.Fatal("go.mod names no module")
	}
	forbidden := module + "/locks"
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked, views := 0, 0
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range f.Imports {
			path, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				t.Fatal(err)
			}
			if path == forbidden || strings.HasPrefix(path, forbidden+"/") {
				t.Errorf("%s imports %s: the lock model belongs to the views (transcript, tui), not to the command line", name, path)
			}
			if path == module+"/transcript" || path == module+"/tui" {
				views++
			}
		}
	}
	// Not vacuous: the files read are the command line's, which hand over to views.
	if checked < 10 || views == 0 {
		t.Fatalf("read %d files, %d imports of a view: not cli's files", checked, views)
	}
}
