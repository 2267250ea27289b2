package db

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// PoolerPort is the port of a pooler lockstep starts; it listens on a Unix
// socket in its own dir only.
const PoolerPort = 6432

// PoolerServers is how many server connections the pooler keeps per
// database and user: few, so that clients visibly share them.
const PoolerServers = 2

// Pooler is a PgBouncer in transaction pooling mode that lockstep started
// in front of a database, as a class of applications would run one: a
// client holds a server connection only for the length of a transaction.
type Pooler struct{ daemon }

// ErrNoPgbouncer says PgBouncer is not installed.
var ErrNoPgbouncer = errors.New("PgBouncer is not installed: apt-get install pgbouncer (Debian, Ubuntu), dnf install pgbouncer (Fedora), brew install pgbouncer (macOS)")

// FindPgbouncer finds the pgbouncer program on PATH or where packages put it.
func FindPgbouncer() (string, error) {
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/pgbouncer", "/usr/local/bin/pgbouncer", "/opt/homebrew/bin/pgbouncer", "/usr/local/sbin/pgbouncer"} {
		if isExecutable(p) {
			return p, nil
		}
	}
	return "", ErrNoPgbouncer
}

// StartPooler starts PgBouncer in front of upstream, in transaction pooling
// mode with PoolerServers server connections, listening only on a Unix
// socket in a private dir. The caller must call Stop on every exit path;
// if lockstep dies, the pooler goes with it as the throwaway server does.
func StartPooler(ctx context.Context, upstream *Database) (_ *Pooler, err error) {
	if err := throwawayUnsupported(); err != nil || runtime.GOOS == "windows" {
		return nil, errors.New("lockstep starts PgBouncer only on Linux and macOS")
	}
	bin, err := FindPgbouncer()
	if err != nil {
		return nil, err
	}
	cred, err := serverCredential() // PgBouncer refuses to run as root too
	if err != nil {
		return nil, err
	}
	dir, err := makeServerDir(tempCandidates(), cred)
	if err != nil {
		return nil, err
	}
	p := &Pooler{daemon{dir: dir}}
	defer func() {
		if err != nil {
			_ = p.Stop()
		}
	}()
	// As for the server's dir: a later start removes it if lockstep died.
	if err := writeOwner(dir); err != nil {
		return nil, err
	}
	up := upstream.config
	target := fmt.Sprintf("host=%s port=%d user=%s", up.Host, up.Port, up.User)
	if up.Password != "" {
		target += " password=" + up.Password
	}
	ini := strings.Join([]string{
		"[databases]",
		"* = " + target,
		"[pgbouncer]",
		"listen_addr =",
		"unix_socket_dir = " + dir,
		"listen_port = " + strconv.Itoa(PoolerPort),
		"auth_type = any",
		"pool_mode = transaction",
		"default_pool_size = " + strconv.Itoa(PoolerServers),
		"max_client_conn = 100",
		"admin_users = " + up.User,
		"logfile = " + filepath.Join(dir, "pgbouncer.log"),
		"pidfile = " + filepath.Join(dir, "pgbouncer.pid"),
		// pgx sends these at connect; a pooler cannot keep them per client.
		"ignore_startup_parameters = extra_float_digits,search_path",
		"",
	}, "\n")
	conf := filepath.Join(dir, "pgbouncer.ini")
	if err := os.WriteFile(conf, []byte(ini), 0o600); err != nil {
		return nil, fmt.Errorf("writing PgBouncer's configuration: %w", err)
	}
	for _, path := range []string{dir, conf} {
		if cred != nil {
			if err := os.Chown(path, int(cred.uid), int(cred.gid)); err != nil {
				return nil, fmt.Errorf("handing %s to the %s user: %w", path, cred.name, err)
			}
		}
	}
	cmd := exec.Command(bin, conf)
	cmd.Dir = dir
	cmd.Env = childEnv()
	cmd.SysProcAttr = childAttr(cred, syscall.SIGTERM)
	if err := p.run(cmd, nil); err != nil {
		return nil, fmt.Errorf("starting PgBouncer: %w", err)
	}
	return p, p.waitReady(ctx, up.User)
}

func (p *Pooler) waitReady(ctx context.Context, user string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cfg, err := pgconn.ParseConfig(fmt.Sprintf("host=%s port=%d user=%s dbname=pgbouncer", p.dir, PoolerPort, user))
	if err != nil {
		return err
	}
	for {
		conn, err := pgconn.ConnectConfig(ctx, cfg)
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-p.done:
			log, _ := os.ReadFile(filepath.Join(p.dir, "pgbouncer.log"))
			return fmt.Errorf("PgBouncer exited during start: %s", lastLine(string(log)))
		case <-ctx.Done():
			return fmt.Errorf("waiting for PgBouncer to accept connections: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Dir is the pooler's private dir; its Unix socket lives there.
func (p *Pooler) Dir() string { return p.dir }

// Stop shuts PgBouncer down at once and deletes its dir. It is safe to call
// more than once and from any exit path.
func (p *Pooler) Stop() error {
	// SIGTERM is PgBouncer's immediate shutdown.
	return p.stop(func(proc *os.Process) error { return proc.Signal(syscall.SIGTERM) }, time.Second)
}

// Through is the same database reached through pooler p: connections made
// from it are the pooler's clients. The copy owns nothing.
func (d *Database) Through(p *Pooler) *Database {
	c := *d
	c.owner = false
	c.config = d.config.Copy()
	c.config.Host, c.config.Port = p.dir, PoolerPort
	c.config.Password = ""
	c.config.Fallbacks = nil
	c.config.TLSConfig = nil
	c.pooled = true
	return &c
}

// Pooled says whether connections go through a pooler lockstep started:
// their backend pids are the pooler's make-believe, not the server's.
func (d *Database) Pooled() bool { return d.pooled }
