package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"lockstep/serve"
	"lockstep/sim"
	"lockstep/tui"
)

// serveFlags are lockstep serve's flags.
type serveFlags struct {
	opts       serve.Options
	teacherKey string
}

func (a *app) serveCommand() *cobra.Command {
	var sf serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve lockstep to a whole class over SSH: students need nothing but ssh",
		Long: "serve is an SSH server whose every login gets lockstep's interface, at the login's terminal size and\n" +
			"colours. The SSH user name is the student's name; each student is a PostgreSQL role of their own\n" +
			"(lockstep_s_<name>, in a schema of the same name), so no one reads, changes, cancels or drops another's\n" +
			"data, whatever they type. Students log in with the class code (made and printed unless --code or\n" +
			"--authorized-keys says otherwise) or a key of --authorized-keys; the teacher's key (--teacher-key)\n" +
			"gets the class view: every student and their run's state, a student's screen live and read-only, a\n" +
			"run pushed to every student, a line sent to all. Ctrl-C ends the class: every screen is told, every\n" +
			"transaction rolls back, and the roles and schemas serve made are dropped.",
		Example: "  lockstep serve --teacher-key ~/.ssh/id_ed25519.pub\n" +
			"  lockstep serve --listen 0.0.0.0:2222 --teacher-key ~/.ssh/id_ed25519.pub --max-students 30",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.serve(cmd, &sf) },
	}
	fl := cmd.Flags()
	fl.StringVar(&sf.opts.Listen, "listen", serve.DefaultListen, "address to listen on (0.0.0.0:2222 opens it to the class network)")
	fl.StringVar(&sf.opts.Code, "code", "", "the class code students type (default: one made and printed; none with --authorized-keys)")
	fl.StringVar(&sf.opts.AuthorizedKeys, "authorized-keys", "", "an OpenSSH authorized_keys file: these keys log in as students, with no code")
	fl.StringVar(&sf.teacherKey, "teacher-key", "", "the teacher's public key (an authorized_keys or .pub file): it gets the class view")
	fl.IntVar(&sf.opts.MaxStudents, "max-students", serve.DefaultMaxStudents, "students connected at once, at most")
	fl.DurationVar(&sf.opts.Idle, "idle", serve.DefaultIdle, "disconnect a student who pressed no key for this long (their transactions roll back)")
	fl.DurationVar(&sf.opts.KeepAlive, "keepalive", serve.DefaultKeepAlive, "ask each client this often whether it is there; one silent for three is gone, and its transactions roll back")
	fl.StringVar(&sf.opts.HostKey, "host-key", "", "the server's host key (default: made once in lockstep's cache directory)")
	fl.StringVar(&sf.opts.Theme, "theme", os.Getenv("LOCKSTEP_THEME"), "default, or projector, for a client that sends no LOCKSTEP_THEME of its own")
	return cmd
}

// serve runs a class until Ctrl-C or SIGTERM.
func (a *app) serve(cmd *cobra.Command, sf *serveFlags) error {
	out := cmd.ErrOrStderr()
	// serve's log is often piped (| tee class.log): a reader that dies with
	// the Ctrl-C must not take serve with it before the class has ended.
	signal.Ignore(syscall.SIGPIPE)
	opts := sf.opts
	opts.TeacherKeys = sf.teacherKey
	if _, err := tui.ParseTheme(opts.Theme); err != nil {
		return badInput(fmt.Errorf("--theme: %w", err))
	}
	if opts.MaxStudents < 1 {
		return badInput(fmt.Errorf("--max-students %d: at least 1", opts.MaxStudents))
	}
	if opts.HostKey == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return badInput(fmt.Errorf("no cache directory for the host key (%v): pass --host-key FILE", err))
		}
		opts.HostKey = filepath.Join(dir, "lockstep", "serve", "ssh_host_ed25519_key")
	}
	ctx := cmd.Context()
	if a.dsn == "" && os.Getenv("DATABASE_URL") == "" {
		fmt.Fprintln(out, "lockstep serve: starting a throwaway PostgreSQL…")
		// Room for every student's largest run (nine sessions), and serve's own.
		a.maxConnections = 20 + opts.MaxStudents*(sim.MaxSessions+2)
	}
	d, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer d.Close()
	opts.DB, opts.Log = d, out
	opts.Server = d.Describe()
	if srv := d.Server(); srv != nil {
		opts.Server = "throwaway PostgreSQL " + srv.Version()
	}
	s, err := serve.New(ctx, opts)
	if err != nil {
		return badInput(err)
	}
	a.announce(out, s, opts, sf.teacherKey)
	a.untilSignal = true // Ctrl-C is how a class ends: exit code 0
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	select {
	case <-ctx.Done():
	case err = <-served:
	}
	fmt.Fprintln(out, "lockstep serve: ending the class…")
	// The screens end and roll back in parallel; what is left of 2 s goes
	// to dropping the students' roles and schemas.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 1500*time.Millisecond)
	defer cancel()
	if derr := s.Shutdown(sctx); derr != nil {
		lines := strings.Split(derr.Error(), "\n")
		for i, e := range lines {
			if i == 3 && len(lines) > 4 {
				fmt.Fprintf(out, "lockstep serve: and %d more like these; as a superuser, DROP SCHEMA lockstep_s_NAME CASCADE and DROP ROLE lockstep_s_NAME remove each\n", len(lines)-3)
				break
			}
			fmt.Fprintln(out, "lockstep serve: "+e)
		}
		if err == nil {
			err = errors.New("some of the students' roles or schemas were kept (see above)")
		}
	}
	if err == nil {
		fmt.Fprintln(out, "lockstep serve: the class is over; every transaction rolled back; the students' roles and schemas are dropped.")
	}
	return err
}

// announce says how to log in: the students' ssh line, the code, the
// teacher's, and what a push can start.
func (a *app) announce(out io.Writer, s *serve.Server, opts serve.Options, teacherKey string) {
	host, port, _ := net.SplitHostPort(s.Addr())
	open := ""
	switch ip := net.ParseIP(host); {
	case ip != nil && ip.IsLoopback():
		host = "localhost"
		open = " (this machine only: --listen 0.0.0.0:" + port + " opens it to the class network)"
	case ip != nil && ip.IsUnspecified():
		host = outwardAddress()
	}
	fmt.Fprintf(out, "lockstep serve is ready on %s%s, over %s.\n", s.Addr(), open, opts.Server)
	fmt.Fprintf(out, "  host key   %s (kept in %s)\n", s.Fingerprint(), opts.HostKey)
	fmt.Fprintf(out, "  students   ssh -p %s NAME@%s      (NAME: their name in the class — letters, digits, _)\n", port, host)
	if s.Code() != "" {
		fmt.Fprintf(out, "  class code %s\n", s.Code())
	}
	if opts.AuthorizedKeys != "" {
		fmt.Fprintf(out, "  keys       of %s log in with no code\n", opts.AuthorizedKeys)
	}
	if teacherKey != "" {
		priv := strings.TrimSuffix(teacherKey, ".pub")
		fmt.Fprintf(out, "  teacher    ssh -p %s -i %s teacher@%s      (the class view)\n", port, priv, host)
	} else {
		fmt.Fprintln(out, "  teacher    none: --teacher-key FILE gives a key the class view")
	}
	if sk := s.Skipped(); len(sk) > 0 {
		// Grouped by why: "coupled, coupled-2pc (it needs a second database)".
		var whys []string
		names := map[string][]string{}
		for _, x := range sk {
			name, why, _ := strings.Cut(x, " (")
			if _, ok := names[why]; !ok {
				whys = append(whys, why)
			}
			names[why] = append(names[why], name)
		}
		var parts []string
		for _, why := range whys {
			parts = append(parts, strings.Join(names[why], ", ")+" ("+why)
		}
		fmt.Fprintf(out, "  push       p in the class view starts any strategy or scenario for everyone, but %s\n", strings.Join(parts, "; "))
	}
	fmt.Fprintln(out, "Ctrl-C ends the class: every screen is told, every transaction rolls back, the students' roles and schemas are dropped.")
}

// outwardAddress is an address of this machine the class can reach, for
// the students' ssh line; "HOST" when there is none to name.
func outwardAddress() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "HOST"
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return "HOST"
}
