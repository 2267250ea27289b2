// Package serve is lockstep serve: a whole class over SSH with nothing to
// install. Every login gets the interface — tui's model, the local one —
// over its SSH session, at its own size and colours, with its sessions
// running as a PostgreSQL role of the student's own (roles.go); the
// teacher's key gets the class view (tui's teacher screen) over the class
// serve keeps (class.go). It is charm's wish with its Bubble Tea
// middleware; the sessions' lifetimes — keep-alive, idle, a second login,
// the end of the class — are session.go's.
package serve

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"charm.land/log/v2"
	"charm.land/ssh"
	"charm.land/wish/v2"
	"charm.land/wish/v2/bubbletea"
	"github.com/charmbracelet/keygen"
	gossh "golang.org/x/crypto/ssh"

	"lockstep/db"
	"lockstep/tui"
)

// Options set up a class.
type Options struct {
	// DB is where the students' roles go: serve's own role there must be a
	// superuser or have CREATEROLE, and may create schemas.
	DB *db.Database
	// Listen is the address to listen on; "" means DefaultListen.
	Listen string
	// HostKey is the host key's file, made on first use.
	HostKey string
	// AuthorizedKeys is an OpenSSH authorized_keys file of keys that log
	// in as students; "" for none.
	AuthorizedKeys string
	// Code is the class code asked by keyboard-interactive; "" with no
	// AuthorizedKeys means one is made (Code says which).
	Code string
	// TeacherKeys is an authorized_keys file of the teacher's keys.
	TeacherKeys string
	// MaxStudents bounds the students connected at once; 0 means 60.
	MaxStudents int
	// Idle disconnects a student who pressed no key for that long; 0
	// means 30 minutes.
	Idle time.Duration
	// KeepAlive is how often serve asks each client whether it is there;
	// one that has not answered for three of them is gone. 0 means 5 s.
	KeepAlive time.Duration
	// Theme is the interface's theme for a client that sends no
	// LOCKSTEP_THEME of its own.
	Theme string
	// Server names the database in each student's header.
	Server string
	// Log is told who came and went, one line each; nil means nowhere.
	Log io.Writer
	// FailDelay is how long a wrong class code waits before it is
	// refused; 0 means 2 s, as login(1) waits.
	FailDelay time.Duration
}

// Defaults.
const (
	DefaultListen      = "127.0.0.1:2222"
	DefaultMaxStudents = 60
	DefaultIdle        = 30 * time.Minute
	DefaultKeepAlive   = 5 * time.Second
	defaultFailDelay   = 2 * time.Second
	keepAliveMisses    = 3
)

// Server is a class being served.
type Server struct {
	opts   Options
	ssh    *ssh.Server
	ln     net.Listener
	admin  *admin
	class  *class
	ctx    context.Context
	cancel context.CancelCauseFunc

	fingerprint string
	code        string
	students    []gossh.PublicKey
	teachers    []gossh.PublicKey
	skipped     []string

	sessions sync.WaitGroup
	logMu    sync.Mutex
	closed   sync.Once
}

// ErrClassOver is why every screen ends when serve stops.
var ErrClassOver = errors.New("the class is over: the teacher stopped lockstep serve; every transaction of yours rolled back")

// New checks what the class needs — the database role, the keys, room on
// the server for MaxStudents — makes the host key on first use, and
// listens. Serve serves; Shutdown ends the class.
func New(ctx context.Context, opts Options) (*Server, error) {
	if opts.Listen == "" {
		opts.Listen = DefaultListen
	}
	if opts.MaxStudents == 0 {
		opts.MaxStudents = DefaultMaxStudents
	}
	if opts.Idle == 0 {
		opts.Idle = DefaultIdle
	}
	if opts.KeepAlive == 0 {
		opts.KeepAlive = DefaultKeepAlive
	}
	if opts.FailDelay == 0 {
		opts.FailDelay = defaultFailDelay
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if _, err := tui.ParseTheme(opts.Theme); err != nil {
		return nil, err
	}
	switch {
	case opts.MaxStudents < 1:
		return nil, fmt.Errorf("--max-students %d: at least 1", opts.MaxStudents)
	case opts.Idle < time.Second:
		return nil, fmt.Errorf("--idle %s: at least 1s (the default is %s)", opts.Idle, DefaultIdle)
	case opts.KeepAlive < 10*time.Millisecond || opts.KeepAlive > 10*time.Minute:
		return nil, fmt.Errorf("--keepalive %s: between 10ms and 10m (the default is %s)", opts.KeepAlive, DefaultKeepAlive)
	}
	s := &Server{opts: opts, code: opts.Code}
	var err error
	if opts.AuthorizedKeys != "" {
		if s.students, err = readKeys(opts.AuthorizedKeys, "--authorized-keys"); err != nil {
			return nil, err
		}
	}
	if opts.TeacherKeys != "" {
		if s.teachers, err = readKeys(opts.TeacherKeys, "--teacher-key"); err != nil {
			return nil, err
		}
	}
	if s.code == "" && opts.AuthorizedKeys == "" {
		s.code = newCode()
	}
	if s.code != "" && len(s.code) < 4 {
		return nil, fmt.Errorf("--code %q: at least 4 characters, or leave it out for one made for you", s.code)
	}
	signer, err := hostKey(opts.HostKey)
	if err != nil {
		return nil, err
	}
	s.fingerprint = gossh.FingerprintSHA256(signer.PublicKey())
	if s.admin, err = openAdmin(ctx, opts.DB); err != nil {
		return nil, err
	}
	if err := s.checkRoom(ctx); err != nil {
		s.admin.close()
		return nil, err
	}
	runs, skipped := pushable(s.admin.setDeadlock)
	s.skipped = skipped
	s.ln, err = net.Listen("tcp", opts.Listen)
	if err != nil {
		s.admin.close()
		return nil, fmt.Errorf("--listen %s: %w", opts.Listen, err)
	}
	s.class = newClass(defaultRun, runs, s.describe())
	s.ctx, s.cancel = context.WithCancelCause(context.WithoutCancel(ctx))
	// wish's Bubble Tea middleware logs a program killed at a disconnect as
	// an error; a disconnect is a student's ordinary way out.
	log.SetOutput(io.Discard)
	s.ssh = &ssh.Server{}
	if err := s.ssh.SetOption(wish.WithMiddleware(bubbletea.MiddlewareWithProgramHandler(s.program), s.session)); err != nil {
		s.ln.Close()
		s.admin.close()
		return nil, err
	}
	s.configure(signer)
	return s, nil
}

// defaultRun is what a class starts with: the lecture's strategy.
const defaultRun = "for-update"

// configure sets who may log in and what they may ask for.
func (s *Server) configure(signer gossh.Signer) {
	srv := s.ssh
	srv.HostSigners = []ssh.Signer{signer}
	srv.Version = "lockstep"
	srv.HandshakeTimeout = 30 * time.Second
	if len(s.students) > 0 || len(s.teachers) > 0 {
		srv.PublicKeyHandler = func(_ ssh.Context, key ssh.PublicKey) bool {
			return keyIn(key, s.students) || keyIn(key, s.teachers)
		}
	}
	if s.code != "" {
		srv.KeyboardInteractiveHandler = s.askCode
	}
	// No port forwarding (nil callbacks refuse it), no subsystem (none is
	// registered), no agent, no X11: a session gets lockstep and nothing
	// else. An exec request gets one line (session.go).
	srv.LocalPortForwardingCallback = nil
	srv.ReversePortForwardingCallback = nil
	srv.SubsystemHandlers = map[string]ssh.SubsystemHandler{}
	srv.ChannelHandlers = map[string]ssh.ChannelHandler{"session": ssh.DefaultSessionHandler}
	srv.RequestHandlers = map[string]ssh.RequestHandler{}
}

// askCode asks for the class code, and refuses a wrong one after the
// usual delay, so that guessing it is slow.
func (s *Server) askCode(ctx ssh.Context, ask gossh.KeyboardInteractiveChallenge) bool {
	answers, err := ask("lockstep", fmt.Sprintf("Logging in as %s: the class code is on the teacher's screen.", ctx.User()),
		[]string{"Class code: "}, []bool{false})
	if err == nil && len(answers) == 1 && sameCode(answers[0], s.code) {
		return true
	}
	select {
	case <-time.After(s.opts.FailDelay):
	case <-ctx.Done():
	}
	if err == nil {
		s.logf("%s: a wrong class code from %s", ctx.User(), ctx.RemoteAddr())
		// Said, not only refused: ssh shows a request's instruction even
		// when it asks nothing, then asks again or gives up.
		_, _ = ask("lockstep", "That class code is wrong: type it as the teacher's screen shows it.", nil, nil)
	}
	return false
}

// Serve answers logins until Shutdown.
func (s *Server) Serve() error {
	err := s.ssh.Serve(s.ln)
	if errors.Is(err, ssh.ErrServerClosed) || s.ctx.Err() != nil {
		return nil
	}
	return err
}

// Addr is the address serve listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Fingerprint is the host key's SHA256 fingerprint, as ssh shows it.
func (s *Server) Fingerprint() string { return s.fingerprint }

// Code is the class code, "" when only keys log in.
func (s *Server) Code() string { return s.code }

// Skipped lists the built-in scenarios a push cannot start, each with why.
func (s *Server) Skipped() []string { return s.skipped }

// Shutdown ends the class: every screen is told and ends, every session
// rolls back, and the roles and schemas serve made are dropped — within
// ctx's deadline.
func (s *Server) Shutdown(ctx context.Context) error {
	var errs []error
	s.closed.Do(func() {
		s.cancel(ErrClassOver)
		_ = s.ln.Close()
		done := make(chan struct{})
		go func() { s.sessions.Wait(); close(done) }()
		// The screens roll back on their own, most within a moment; what is
		// left then is ended by the server (which rolls back what it held)
		// as the drops begin, so that they have the time they need.
		select {
		case <-done:
		case <-time.After(300 * time.Millisecond):
		case <-ctx.Done():
		}
		errs = append(errs, s.admin.dropAll(ctx)...)
		select {
		case <-done:
		case <-ctx.Done():
		}
		_ = s.ssh.Close()
		s.admin.close()
	})
	return errors.Join(errs...)
}

// describe says how students log in, for the teacher's header.
func (s *Server) describe() string {
	host, port, _ := net.SplitHostPort(s.Addr())
	if host == "127.0.0.1" || host == "::1" {
		host = "localhost"
	} else if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "HOST"
	}
	line := fmt.Sprintf("students: ssh -p %s NAME@%s", port, host)
	if s.code != "" {
		line += " · class code " + s.code
	}
	return line
}

// checkRoom refuses a class the server's max_connections cannot hold.
func (s *Server) checkRoom(ctx context.Context) error {
	free, used, err := s.admin.room(ctx)
	if err != nil {
		return err
	}
	if free < s.opts.MaxStudents {
		return fmt.Errorf("the server's max_connections (%d, %d kept for superusers, %d in use) holds %d students at %d connections each, fewer than --max-students %d: "+
			"raise max_connections, or pass --max-students %d", s.admin.maxConns, s.admin.reserved, used, max(free, 0), connsPerStudent, s.opts.MaxStudents, max(free, 1))
	}
	return nil
}

func (s *Server) logf(format string, args ...any) {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	fmt.Fprintf(s.opts.Log, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// hostKey reads the host key, making it on first use.
func hostKey(path string) (gossh.Signer, error) {
	if path == "" {
		return nil, errors.New("no host key file: pass --host-key FILE")
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		// keygen writes an ed25519 key (and its .pub), 0600, in a 0700 dir.
		if _, err := keygen.New(path, keygen.WithKeyType(keygen.Ed25519), keygen.WithWrite()); err != nil {
			return nil, fmt.Errorf("making the host key %s: %w", path, err)
		}
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the host key: %w", err)
	}
	signer, err := gossh.ParsePrivateKey(pem)
	if err != nil {
		return nil, fmt.Errorf("the host key %s is not a private key lockstep can read (%v): move it away, and serve makes a new one", path, err)
	}
	return signer, nil
}

// readKeys reads an OpenSSH authorized_keys file.
func readKeys(path, flag string) ([]gossh.PublicKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	defer f.Close()
	var keys []gossh.PublicKey
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, _, _, _, err := gossh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			return nil, fmt.Errorf("%s %s, line %d: not a public key in OpenSSH's format (%v); a line reads like ssh-ed25519 AAAA… name", flag, path, n, err)
		}
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s %s: %w", flag, path, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s %s holds no key: add a line like ssh-ed25519 AAAA… name (a .pub file's)", flag, path)
	}
	return keys, nil
}

func keyIn(k gossh.PublicKey, keys []gossh.PublicKey) bool {
	for _, o := range keys {
		if ssh.KeysEqual(k, o) {
			return true
		}
	}
	return false
}

// codeAlphabet has no letters read as others (no 0/o, 1/l/i).
const codeAlphabet = "abcdefghjkmnpqrstuvwxyz23456789"

// newCode is a class code: two groups of four, about 39 bits.
func newCode() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	out := make([]byte, 0, 9)
	for i, c := range b {
		if i == 4 {
			out = append(out, '-')
		}
		out = append(out, codeAlphabet[int(c)%len(codeAlphabet)])
	}
	return string(out)
}

// sameCode compares codes as a student types them: case and blanks aside,
// in constant time.
func sameCode(typed, code string) bool {
	norm := func(s string) []byte { return []byte(strings.ToLower(strings.Join(strings.Fields(s), ""))) }
	a, b := norm(typed), norm(code)
	if len(a) != len(b) {
		return false
	}
	var diff byte
	for i := range a {
		diff |= a[i] ^ b[i]
	}
	return diff == 0
}
