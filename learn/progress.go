package learn

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"time"
)

// Progress is what a student has done: the lessons finished, each
// question's first answer, the exercises passed. It lives in one JSON file
// in the user's state directory (StateDir) and survives restarts.
type Progress struct {
	Version   int                          `json:"version"`
	Lessons   map[string]*LessonProgress   `json:"lessons"`
	Exercises map[string]*ExerciseProgress `json:"exercises"`
	path      string
}

// LessonProgress is one lesson's.
type LessonProgress struct {
	Title string `json:"title"`
	Done  bool   `json:"done"`
	// Reached is how many of its actions the student has run, at most.
	Reached int `json:"reached"`
	// First is each question's first answer: right or not, by question key.
	First   map[string]bool `json:"first"`
	Updated time.Time       `json:"updated"`
}

// Score is how many questions were answered, and how many right the first time.
func (lp *LessonProgress) Score() (right, asked int) {
	if lp == nil {
		return 0, 0
	}
	for _, ok := range lp.First {
		asked++
		if ok {
			right++
		}
	}
	return right, asked
}

// ExerciseProgress is one exercise's.
type ExerciseProgress struct {
	Passed  bool      `json:"passed"`
	Tries   int       `json:"tries"`
	Last    string    `json:"last"`
	Updated time.Time `json:"updated"`
}

// progressVersion is the file's format.
const progressVersion = 1

// StateDir is where lockstep keeps a student's progress and answers:
// $XDG_STATE_HOME/lockstep when XDG_STATE_HOME is set; else, on Linux and
// the BSDs, ~/.local/state/lockstep (the XDG default); on macOS and
// Windows the user's configuration directory (os.UserConfigDir:
// ~/Library/Application Support/lockstep, %AppData%\lockstep).
func StateDir() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "lockstep"), nil
	}
	switch runtime.GOOS {
	case "darwin", "windows", "ios", "plan9":
		d, err := os.UserConfigDir()
		if err != nil {
			return "", fmt.Errorf("no directory to keep your progress in: %w (set XDG_STATE_HOME)", err)
		}
		return filepath.Join(d, "lockstep"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return "", errors.New("no home directory to keep your progress in: set XDG_STATE_HOME")
	}
	return filepath.Join(home, ".local", "state", "lockstep"), nil
}

// ProgressFile is the progress file's path in dir.
func ProgressFile(dir string) string { return filepath.Join(dir, "learn.json") }

// LoadProgress reads the progress file in dir. A file that is missing
// means no progress yet. A file that is damaged — not JSON, not this
// format — is set aside (renamed to …damaged-TIME) and progress starts
// afresh; note says so in one line.
func LoadProgress(dir string) (p *Progress, note string, err error) {
	path := ProgressFile(dir)
	p = &Progress{Version: progressVersion, Lessons: map[string]*LessonProgress{}, Exercises: map[string]*ExerciseProgress{}, path: path}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return p, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("reading your progress: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(f, 16<<20))
	f.Close()
	if err != nil {
		return nil, "", fmt.Errorf("reading your progress: %w", err)
	}
	var got Progress
	problem := ""
	switch err := json.Unmarshal(b, &got); {
	case err != nil:
		problem = "it is not a progress file (" + err.Error() + ")"
	case got.Version != progressVersion:
		problem = fmt.Sprintf("it is of format %d, and this lockstep reads %d", got.Version, progressVersion)
	}
	if problem == "" {
		for k, lp := range got.Lessons {
			if lp == nil {
				delete(got.Lessons, k)
			}
		}
		for k, ep := range got.Exercises {
			if ep == nil {
				delete(got.Exercises, k)
			}
		}
		if got.Lessons == nil {
			got.Lessons = map[string]*LessonProgress{}
		}
		if got.Exercises == nil {
			got.Exercises = map[string]*ExerciseProgress{}
		}
		got.path = path
		return &got, "", nil
	}
	// Its own name, even when another was set aside within the same second.
	aside := path + ".damaged-" + time.Now().Format("20060102T150405")
	for n := 2; ; n++ {
		if _, err := os.Lstat(aside); errors.Is(err, fs.ErrNotExist) {
			break
		}
		aside = fmt.Sprintf("%s.damaged-%s-%d", path, time.Now().Format("20060102T150405"), n)
	}
	if err := os.Rename(path, aside); err != nil {
		return nil, "", fmt.Errorf("your progress file %s is damaged (%s) and could not be set aside: %w", path, problem, err)
	}
	return p, fmt.Sprintf("your progress file %s was damaged (%s): set aside as %s, starting afresh", path, problem, aside), nil
}

// Save writes the progress, whole or not at all.
func (p *Progress) Save() error {
	if err := os.MkdirAll(filepath.Dir(p.path), 0o700); err != nil {
		return fmt.Errorf("saving your progress: %w", err)
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return fmt.Errorf("saving your progress: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(p.path), ".learn-*.json")
	if err != nil {
		return fmt.Errorf("saving your progress: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("saving your progress: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("saving your progress: %w", err)
	}
	if err := os.Rename(tmp.Name(), p.path); err != nil {
		return fmt.Errorf("saving your progress: %w", err)
	}
	return nil
}

// Path is the progress file.
func (p *Progress) Path() string { return p.path }

// Lesson is a lesson's progress, made when first asked for.
func (p *Progress) Lesson(l *Lesson) *LessonProgress {
	lp := p.Lessons[l.Key()]
	if lp == nil {
		lp = &LessonProgress{Title: l.Title, First: map[string]bool{}}
		p.Lessons[l.Key()] = lp
	}
	if lp.First == nil {
		lp.First = map[string]bool{}
	}
	return lp
}

// Exercise is an exercise's progress, made when first asked for.
func (p *Progress) Exercise(name string) *ExerciseProgress {
	ep := p.Exercises[name]
	if ep == nil {
		ep = &ExerciseProgress{}
		p.Exercises[name] = ep
	}
	return ep
}

// Answered records an answer: only a question's first counts.
func (lp *LessonProgress) Answered(key string, right bool) {
	if _, ok := lp.First[key]; !ok {
		lp.First[key] = right
	}
	lp.Updated = time.Now()
}

// QuestionKey names a question in the progress: its place in the lesson
// and its text, so that a question reworded is asked afresh.
func QuestionKey(index int, q *Question) string {
	h := sha256.Sum256([]byte(q.Text))
	return fmt.Sprintf("%d-%s", index, hex.EncodeToString(h[:4]))
}

// Reset removes the progress file; the answers stay.
func Reset(dir string) (removed bool, err error) {
	err = os.Remove(ProgressFile(dir))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("removing your progress: %w", err)
	}
	return true, nil
}
