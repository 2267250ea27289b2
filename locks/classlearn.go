package locks

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Learner is a student taking a lesson of lockstep learn on the server,
// as the connection lockstep keeps for the lesson says in its name
// (LearnerName): which lesson, how far, how many questions right the first
// time. application_name is one column of pg_stat_activity every role may
// read, so a teacher needs no privilege to see the class's progress. The
// name is not a run's (lockstep/<run>/…): the class's runs leave it out.
type Learner struct {
	User, Database string
	Run            string
	// Lesson is the lesson's number in the course, 0 for a lesson file.
	Lesson      int
	Step, Steps int
	Right       int
	Asked       int
	Since       time.Time
}

// learnerPrefix begins the name of a lesson's connection.
const learnerPrefix = "lockstep-learn/"

// LearnerName is the application_name that says where a student is:
// "lockstep-learn/3a9f1c 3 9/16 4/5" — lesson 3, step 9 of 16, 4 of 5
// right, in the interface run 3a9f1c.
func LearnerName(id string, lesson, step, steps, right, asked int) string {
	return fmt.Sprintf("%s%s %d %d/%d %d/%d", learnerPrefix, id, lesson, step, steps, right, asked)
}

// parseLearner reads what LearnerName wrote.
func parseLearner(name string) (Learner, bool) {
	var l Learner
	rest, ok := strings.CutPrefix(name, learnerPrefix)
	if !ok {
		return l, false
	}
	f := strings.Fields(rest)
	if len(f) != 4 {
		return l, false
	}
	l.Run, f = f[0], f[1:]
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return l, false
	}
	pair := func(s string) (int, int, bool) {
		a, b, ok := strings.Cut(s, "/")
		x, err1 := strconv.Atoi(a)
		y, err2 := strconv.Atoi(b)
		return x, y, ok && err1 == nil && err2 == nil
	}
	step, steps, ok1 := pair(f[1])
	right, asked, ok2 := pair(f[2])
	if !ok1 || !ok2 {
		return l, false
	}
	l.Lesson, l.Step, l.Steps, l.Right, l.Asked = n, step, steps, right, asked
	return l, true
}

// Learners lists the students taking a lesson on conn's server, by login.
func Learners(ctx context.Context, conn *pgx.Conn) ([]Learner, error) {
	rows, err := conn.Query(ctx, `SELECT a.usename::text, coalesce(a.datname::text, ''), a.application_name, a.backend_start
		FROM pg_stat_activity a WHERE a.application_name LIKE 'lockstep-learn/%' ORDER BY a.usename, a.backend_start`)
	if err != nil {
		return nil, fmt.Errorf("reading the class's lessons: %w", err)
	}
	defer rows.Close()
	var out []Learner
	for rows.Next() {
		var user, dbname, app string
		var since time.Time
		if err := rows.Scan(&user, &dbname, &app, &since); err != nil {
			return nil, fmt.Errorf("reading the class's lessons: %w", err)
		}
		l, ok := parseLearner(app)
		if !ok {
			continue
		}
		l.User, l.Database, l.Since = user, dbname, since
		out = append(out, l)
	}
	return out, rows.Err()
}
