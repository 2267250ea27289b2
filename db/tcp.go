package db

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"
)

// Where there are no Unix sockets (Windows), the throwaway server listens
// on 127.0.0.1 at a free port, and postgres has a password: initdb sets a
// random one, which the data dir (and so the template) keeps in
// passwordFile; each start replaces it with a new random one at once, so
// that no two runs share a password and the one a template holds opens no
// running server for long.

// passwordFile, in a data dir made for TCP, holds postgres's first password.
const passwordFile = "lockstep.password"

// randomPassword is 26 random capital letters and digits.
func randomPassword() string { return rand.Text() }

// writeInitialPassword writes a new random password to a file in the
// server's dir for initdb --pwfile, readable by the server's user.
func (s *Server) writeInitialPassword(cred *runAs) (file, password string, err error) {
	password = randomPassword()
	file = filepath.Join(s.dir, "initdb.pw")
	if err := writeOwned(file, password+"\n", cred); err != nil {
		return "", "", fmt.Errorf("writing initdb's password file: %w", err)
	}
	return file, password, nil
}

// keepInitialPassword keeps initdb's password in the data dir.
func (s *Server) keepInitialPassword(password string, cred *runAs) error {
	if err := writeOwned(filepath.Join(s.dataDir(), passwordFile), password+"\n", cred); err != nil {
		return fmt.Errorf("keeping the first password in the data dir: %w", err)
	}
	return nil
}

// newPassword gives postgres a new random password on conn, a connection
// made with the old one, and writes a password file (pgpass) for psql.
func (s *Server) newPassword(ctx context.Context, conn *pgconn.PgConn) error {
	pw := randomPassword() // letters and digits only: safe in a literal
	if err := conn.Exec(ctx, "ALTER ROLE postgres PASSWORD '"+pw+"'").Close(); err != nil {
		return fmt.Errorf("setting the throwaway server's password: %w", err)
	}
	s.password = pw
	line := "127.0.0.1:" + strconv.Itoa(s.port) + ":*:postgres:" + pw + "\n"
	if err := os.WriteFile(filepath.Join(s.dir, "pgpass"), []byte(line), 0o600); err != nil {
		return fmt.Errorf("writing the password file: %w", err)
	}
	return nil
}

// writeOwned writes a 0600 file owned by the server's user.
func writeOwned(path, content string, cred *runAs) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return err
	}
	if cred != nil {
		return os.Chown(path, int(cred.uid), int(cred.gid))
	}
	return nil
}

// freePort is a TCP port on 127.0.0.1 that nothing listens on right now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	return port, l.Close()
}
