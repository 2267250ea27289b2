package db

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// dirPrefix names lockstep's temp dirs, so a later start can find stale ones.
const dirPrefix = "lockstep-"

// ownerFile is lockstep's marker in a temp dir of its own: the pid of the
// lockstep process that created the dir, then ownerMark. A later start
// removes a dir only when its name is lockstep's (dirPrefix and the digits
// os.MkdirTemp adds), it holds this file with the mark, and the process,
// the server and the pooler it names are gone.
const ownerFile = "lockstep.pid"

// ownerMark is the marker file's second line.
const ownerMark = "lockstep temp dir: a later lockstep removes it once this process and its server are gone"

// writeOwner marks dir as this process's: lockstep's, and alive.
func writeOwner(dir string) error {
	f, err := os.OpenFile(filepath.Join(dir, ownerFile), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err == nil {
		_, err = fmt.Fprintf(f, "%d\n%s\n", os.Getpid(), ownerMark)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", ownerFile, err)
	}
	return nil
}

// ServerOptions tune a throwaway server at start.
type ServerOptions struct {
	// DeadlockTimeout is the server's deadlock_timeout; 0 keeps PostgreSQL's default (1s).
	DeadlockTimeout time.Duration
	// MaxPreparedTransactions enables PREPARE TRANSACTION; 0 means the default of 16.
	MaxPreparedTransactions int
	// MaxConnections is the server's max_connections; 0 means 200.
	MaxConnections int
	// TempDir is where the server's private dir is made; "" means the first
	// of $TMPDIR, /tmp and /var/tmp that the server's user can enter.
	TempDir string
	// CacheDir keeps the data-directory template; "" means lockstep's dir in
	// the user's cache directory.
	CacheDir string
	// NoTemplate runs initdb on every start, neither using nor keeping a template.
	NoTemplate bool
	// Progress, when set, is told what a slow start is doing, in one line.
	Progress func(string)
	// Fetch says whether and how PostgreSQL is fetched when none is
	// installed, or when another version is asked for.
	Fetch FetchOptions

	// tcp has the server listen on 127.0.0.1 with a password instead of on
	// a Unix socket: always on Windows; tests ask for it elsewhere.
	tcp bool
}

func (o ServerOptions) progress(format string, args ...any) {
	if o.Progress != nil {
		o.Progress(fmt.Sprintf(format, args...))
	}
}

// Server is a private, throwaway PostgreSQL: a fresh data directory in a 0700
// temp dir, reachable only through a Unix socket in that dir — or, where
// there are no Unix sockets (Windows), on 127.0.0.1 at a random port with a
// random password.
type Server struct {
	daemon
	bins Binaries

	ranInitdb bool // the data dir is initdb's, not a template's copy

	tcp      bool   // listening on 127.0.0.1:port, not on a socket in dir
	port     int    // the TCP port; 0 on a socket
	password string // postgres's password over TCP; "" on a socket (trust)
}

// StartServer initialises and starts a throwaway server and waits until it
// accepts connections. The caller must call Stop on every exit path.
func StartServer(ctx context.Context, opts ServerOptions) (_ *Server, err error) {
	if err := throwawayUnsupported(); err != nil {
		return nil, err
	}
	if opts.Fetch.Version != "" {
		if err := ValidateFetchVersion(opts.Fetch.Version); err != nil {
			return nil, err
		}
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	candidates := tempCandidates()
	if opts.TempDir != "" {
		candidates = []string{opts.TempDir}
	}
	dir, err := makeServerDir(candidates, cred)
	if err != nil {
		return nil, err
	}
	s := &Server{daemon: daemon{dir: dir}, tcp: opts.tcp || runtime.GOOS == "windows"}
	defer func() {
		if err != nil {
			_ = s.Stop()
		}
	}()
	if err := writeOwner(dir); err != nil {
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.uid), int(cred.gid)); err != nil {
			return nil, fmt.Errorf("handing %s to the postgres user: %w", dir, err)
		}
	}
	// Binaries that cannot be kept in the cache are fetched into dir, and
	// go with it.
	if s.bins, err = serverBinaries(ctx, opts, cred, dir); err != nil {
		return nil, err
	}
	if err := s.makeDataDir(ctx, cred, opts); err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		if err := s.start(opts, cred); err != nil {
			return nil, err
		}
		err := s.waitReady(ctx)
		if err == nil {
			return s, nil
		}
		// Another program may take a free port before the server binds it.
		if !s.tcp || attempt == 3 || !strings.Contains(err.Error(), "could not create any TCP/IP sockets") {
			return nil, err
		}
		s.ended()
	}
}

// runAs is the user a server program runs as.
type runAs struct {
	name     string
	uid, gid uint32
	groups   []uint32 // supplementary groups
}

// serverCredential returns the identity to run the server as: nil for the
// current user, or the postgres system user when running as root, because
// initdb and postgres refuse to run as root.
func serverCredential() (*runAs, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, errors.New("running as root, and PostgreSQL refuses to run as root, but there is no `postgres` " +
			"system user to run the throwaway server as; create one (useradd --system postgres), run lockstep as an " +
			"ordinary user, or pass --dsn for an existing server")
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	r := &runAs{name: u.Username, uid: uint32(uid), gid: uint32(gid)}
	ids, _ := u.GroupIds()
	for _, id := range ids {
		if g, err := strconv.ParseUint(id, 10, 32); err == nil {
			r.groups = append(r.groups, uint32(g))
		}
	}
	return r, nil
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }

// childEnv is the environment for server programs: ours without PG*
// variables, which could point initdb or postgres elsewhere.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return append(env, "LC_ALL=C")
}

// makeDataDir fills the data dir: a copy of the template when there is a
// sound one, else initdb's output, kept as the template for next time.
func (s *Server) makeDataDir(ctx context.Context, cred *runAs, opts ServerOptions) error {
	cache := opts.CacheDir
	if cache == "" {
		cache = defaultCacheDir()
	}
	if opts.NoTemplate || cache == "" {
		return s.initdb(ctx, cred)
	}
	key := s.bins.templateKey()
	if s.tcp {
		key += "-tcp" // a password instead of trust
	}
	tpl := templatePath(cache, key)
	err := useTemplate(tpl, s.dataDir(), cred)
	if err == nil {
		return nil
	}
	if rmErr := os.RemoveAll(s.dataDir()); rmErr != nil {
		return fmt.Errorf("removing a partial copy of the template: %w", rmErr)
	}
	if !errors.Is(err, errNoTemplate) {
		opts.progress("the PostgreSQL template in %s is damaged (%v); preparing it again…", tpl, err)
		_ = os.RemoveAll(tpl)
	} else if err := homeExists(cache); err != nil {
		opts.progress("cannot keep a template in %s (%v): every start will run initdb", cache, err)
		return s.initdb(ctx, cred)
	} else if err := os.MkdirAll(cache, 0o700); err != nil {
		opts.progress("cannot keep a template in %s (%v): every start will run initdb", cache, errors.Unwrap(err))
		return s.initdb(ctx, cred)
	} else {
		opts.progress("preparing a PostgreSQL %s template in %s (once)…", s.bins.Version, tpl)
	}
	if err := s.initdb(ctx, cred); err != nil {
		return err
	}
	if err := saveTemplate(s.dataDir(), tpl); err != nil {
		opts.progress("cannot keep a template in %s (%v): every start will run initdb", cache, err)
	}
	return nil
}

// homeExists checks that the directory holding the user's cache dir
// exists (HOME, for ~/.cache/lockstep): lockstep creates its cache dir
// and the cache dir above it, never a home directory that is not there.
func homeExists(cache string) error {
	home := filepath.Dir(filepath.Dir(cache))
	st, err := os.Stat(home)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%s does not exist, and lockstep does not create it; set HOME or XDG_CACHE_HOME to keep one", home)
	case err != nil:
		return err
	case !st.IsDir():
		return fmt.Errorf("%s is not a directory", home)
	}
	return nil
}

func (s *Server) initdb(ctx context.Context, cred *runAs) error {
	s.ranInitdb = true
	auth := []string{"-A", "trust"}
	var password string
	if s.tcp {
		// Over TCP anyone on the machine may knock: postgres gets a random
		// password, which the data dir keeps for each start to replace.
		pwfile, pw, err := s.writeInitialPassword(cred)
		if err != nil {
			return err
		}
		defer os.Remove(pwfile)
		auth, password = []string{"-A", "scram-sha-256", "--pwfile", pwfile}, pw
	}
	args := append([]string{"-D", s.dataDir(), "-U", "postgres"}, auth...)
	args = append(args, "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	cmd := exec.CommandContext(ctx, s.bins.program("initdb"), args...)
	cmd.Dir = s.dir
	cmd.Env = childEnv()
	cmd.SysProcAttr = childAttr(cred, syscall.SIGKILL)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("initdb: %w", ctx.Err())
		}
		return fmt.Errorf("initdb in %s failed: %w: %s", s.dir, err, lastLine(out.String()))
	}
	if s.tcp {
		return s.keepInitialPassword(password, cred)
	}
	return nil
}

func (s *Server) start(opts ServerOptions, cred *runAs) error {
	prepared := opts.MaxPreparedTransactions
	if prepared == 0 {
		prepared = 16
	}
	args := []string{
		"-D", s.dataDir(),
		"-k", s.dir, // the socket lives in our private dir
		"-p", "5432",
		"-c", "listen_addresses=", // no TCP at all
	}
	if s.tcp {
		port, err := freePort()
		if err != nil {
			return fmt.Errorf("finding a free TCP port on 127.0.0.1: %w", err)
		}
		s.port = port
		args = []string{
			"-D", s.dataDir(),
			"-c", "unix_socket_directories=", // no socket at all
			"-c", "listen_addresses=127.0.0.1",
			"-p", strconv.Itoa(port),
		}
	}
	args = append(args,
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections="+strconv.Itoa(cmp.Or(opts.MaxConnections, 200)),
		"-c", "max_prepared_transactions="+strconv.Itoa(prepared),
		"-c", "unix_socket_permissions=0700",
		// A wait longer than deadlock_timeout is logged, and so is the
		// deadlock check's verdict: lockstep watch reads both from the log.
		"-c", "log_lock_waits=on",
	)
	if opts.DeadlockTimeout > 0 {
		args = append(args, "-c", fmt.Sprintf("deadlock_timeout=%dms", opts.DeadlockTimeout.Milliseconds()))
	}
	logf, err := os.OpenFile(filepath.Join(s.dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("creating the server log: %w", err)
	}
	cmd := exec.Command(s.bins.program("postgres"), args...)
	cmd.Dir = s.dir
	cmd.Env = childEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	// If lockstep dies, even by kill -9, SIGQUIT (immediate shutdown) goes
	// to the postmaster, whose backends then exit with it (Linux).
	cmd.SysProcAttr = childAttr(cred, syscall.SIGQUIT)
	if err := s.run(cmd, logf); err != nil {
		return fmt.Errorf("starting postgres: %w", err)
	}
	return nil
}

func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if s.tcp {
		pw, err := os.ReadFile(filepath.Join(s.dataDir(), passwordFile))
		if err != nil {
			return fmt.Errorf("reading the throwaway server's first password: %w", err)
		}
		s.password = strings.TrimSpace(string(pw))
	}
	cfg, err := pgconn.ParseConfig(s.URL("postgres"))
	if err != nil {
		return fmt.Errorf("parsing the throwaway server's URL: %w", err)
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		conn, err := pgconn.ConnectConfig(ctx, cfg)
		if err == nil {
			if s.tcp {
				err = s.newPassword(ctx, conn)
			}
			if cerr := conn.Close(ctx); err == nil {
				err = cerr
			}
			return err
		}
		select {
		case <-s.done:
			log, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
			return fmt.Errorf("the throwaway server exited during start: %s", lastLine(string(log)))
		case <-ctx.Done():
			return fmt.Errorf("waiting for the throwaway server to accept connections: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// Dir is the server's private temp dir; its Unix socket lives there (on
// Windows, where it listens on 127.0.0.1, its password file does).
func (s *Server) Dir() string { return s.dir }

// Where says how the server is reached, for a header line (never with
// its password).
func (s *Server) Where() string {
	if s.tcp {
		return fmt.Sprintf("on 127.0.0.1:%d, with a password of its own", s.port)
	}
	return "socket in " + s.dir
}

// Fetched names the fetched PostgreSQL the server runs, e.g. "17.5.0 for
// linux-amd64"; "" when it runs the machine's own.
func (s *Server) Fetched() string { return s.bins.Fetched }

// Version is the server's PostgreSQL version, e.g. "15.20".
func (s *Server) Version() string { return s.bins.Version }

// Pid is the postmaster's process id, or 0 when it is not running.
func (s *Server) Pid() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// URL is a connection URL for database dbname on this server. Over TCP it
// holds the password: keep it off the screen (PublicURL).
func (s *Server) URL(dbname string) string {
	if s.tcp {
		u := url.URL{Scheme: "postgres", User: url.UserPassword("postgres", s.password),
			Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)), Path: "/" + dbname}
		return u.String()
	}
	q := url.Values{"host": {s.dir}}
	return "postgres://postgres@/" + url.PathEscape(dbname) + "?" + q.Encode()
}

// PublicURL is URL fit to show: over TCP the password stays in a password
// file in the server's dir, which the URL names (psql and pgx read it).
func (s *Server) PublicURL(dbname string) string {
	if s.tcp {
		u := url.URL{Scheme: "postgres", User: url.User("postgres"),
			Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)), Path: "/" + dbname,
			RawQuery: url.Values{"passfile": {filepath.Join(s.dir, "pgpass")}}.Encode()}
		return u.String()
	}
	// Unescaped, to read as the dir it is (libpq and pgx take it so).
	return "postgres://postgres@/" + url.PathEscape(dbname) + "?host=" + s.dir
}

// Done is closed when the server process has exited.
func (s *Server) Done() <-chan struct{} { return s.done }

// Stop shuts the server down at once and deletes its directory. It is safe
// to call more than once and from any exit path.
func (s *Server) Stop() error {
	// Immediate shutdown: nothing here is worth a checkpoint. It takes a
	// few milliseconds; a server that has not gone within a second (stopped,
	// or hung) is killed, with its backends.
	return s.stop(quit, time.Second)
}

// removeStale deletes lockstep temp dirs left by a lockstep that is gone and
// whose server is gone too (after a kill -9, the parent-death signal stops the
// server but nobody removes the dir). Only lockstep's own: a dir named as
// os.MkdirTemp named it (lockstep-<digits>) holding lockstep's marker file
// (writeOwner). Anything else in base — a user's lockstep-notes, a clone
// at lockstep-main, a dir another lockstep is creating this moment — stays.
func removeStale(base string) {
	dirs, _ := filepath.Glob(filepath.Join(base, dirPrefix+"*"))
	for _, d := range dirs {
		if !staleOwnDir(d) {
			continue
		}
		_ = os.RemoveAll(d)
	}
}

// staleOwnDir says whether d is a temp dir of lockstep's whose process,
// server and pooler have all exited.
func staleOwnDir(d string) bool {
	digits := strings.TrimPrefix(filepath.Base(d), dirPrefix)
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return false
	}
	st, err := os.Lstat(d)
	if err != nil || !st.IsDir() {
		return false
	}
	marker := filepath.Join(d, ownerFile)
	if fst, err := os.Lstat(marker); err != nil || !fst.Mode().IsRegular() {
		return false
	}
	b, err := os.ReadFile(marker)
	if err != nil {
		return false
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 2 || lines[1] != ownerMark {
		return false
	}
	owner, ok := readPid(marker)
	if !ok || processAlive(owner) {
		return false
	}
	if pm, ok := readPid(filepath.Join(d, "data", "postmaster.pid")); ok && processAlive(pm) {
		return false
	}
	if pb, ok := readPid(filepath.Join(d, "pgbouncer.pid")); ok && processAlive(pb) {
		return false
	}
	return true
}

func readPid(path string) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	return pid, err == nil && pid > 0
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
