package db

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// CacheItem is one thing lockstep keeps in its cache dir: a fetched
// PostgreSQL or a data-directory template.
type CacheItem struct {
	Path  string
	What  string // e.g. "fetched PostgreSQL 17.5.0-linux-amd64", "template for PostgreSQL 15.20"
	Bytes int64
}

// CacheDir is lockstep's cache dir (~/.cache/lockstep, ~/Library/Caches/lockstep,
// %LocalAppData%\lockstep), or "" when the system has none.
func CacheDir() string { return defaultCacheDir() }

// CleanCache removes the PostgreSQL installations lockstep fetched and the
// data-directory templates from cacheDir ("" means CacheDir), and, run as
// root, the fetched installations in SharedFetchRoot. It waits for a
// fetch under way to end (calling waiting once), and leaves the lock files,
// which a waiting lockstep may hold.
func CleanCache(ctx context.Context, cacheDir string, waiting func()) ([]CacheItem, error) {
	shared := ""
	if os.Geteuid() == 0 {
		shared = systemFetchRoot
	}
	return cleanCache(ctx, cmp.Or(cacheDir, defaultCacheDir()), shared, waiting)
}

// SharedFetchRoot is where root's fetched PostgreSQL goes when the postgres
// user cannot enter root's cache dir; lockstep clean --cache run as root
// cleans it too.
const SharedFetchRoot = systemFetchRoot

func cleanCache(ctx context.Context, cache, shared string, waiting func()) ([]CacheItem, error) {
	if cache == "" {
		return nil, errors.New("this system has no cache directory for lockstep (no home directory?); nothing to clean")
	}
	var removed []CacheItem
	roots := []string{filepath.Join(cache, "postgres")}
	if shared != "" && shared != roots[0] {
		roots = append(roots, shared)
	}
	told := false
	for _, root := range roots {
		items, err := cleanFetchRoot(ctx, root, func() {
			if !told {
				told = true
				waiting()
			}
		})
		removed = append(removed, items...)
		if err != nil {
			return removed, err
		}
	}
	tpls, _ := filepath.Glob(filepath.Join(cache, "pgdata-*"))
	unfinished, _ := filepath.Glob(filepath.Join(cache, ".making-*"))
	for _, t := range append(tpls, unfinished...) {
		what := "an unfinished template"
		if name := filepath.Base(t); strings.HasPrefix(name, "pgdata-") {
			what = "template for PostgreSQL " + strings.TrimSuffix(strings.TrimPrefix(name, "pgdata-"), "-f"+templateFormat)
		}
		item := CacheItem{Path: t, What: what, Bytes: duBytes(t)}
		if err := os.RemoveAll(t); err != nil {
			return removed, fmt.Errorf("removing %s: %w", t, err)
		}
		removed = append(removed, item)
	}
	return removed, nil
}

// cleanFetchRoot removes everything in root but its lock files, holding
// each lock while it does.
func cleanFetchRoot(ctx context.Context, root string, waiting func()) ([]CacheItem, error) {
	ents, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	locks, _ := filepath.Glob(filepath.Join(root, ".lock-*"))
	for _, l := range locks {
		unlock, err := lockFile(ctx, l, waiting)
		if err != nil {
			return nil, fmt.Errorf("waiting for a fetch into %s to end: %w", root, err)
		}
		defer unlock()
	}
	var removed []CacheItem
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".lock-") {
			continue
		}
		p := filepath.Join(root, e.Name())
		what := "fetched PostgreSQL " + e.Name()
		if strings.HasPrefix(e.Name(), ".fetch-") {
			what = "an unfinished fetch"
		}
		item := CacheItem{Path: p, What: what, Bytes: duBytes(p)}
		if err := os.RemoveAll(p); err != nil {
			return removed, fmt.Errorf("removing %s: %w", p, err)
		}
		removed = append(removed, item)
	}
	return removed, nil
}

// duBytes is the size of the files under p.
func duBytes(p string) int64 {
	var n int64
	_ = filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}
