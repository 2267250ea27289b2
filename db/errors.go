package db

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
)

// SQLState is the SQLSTATE of the server error in err's chain, or "" when
// the server sent none. Compare it with the constants of
// github.com/jackc/pgerrcode: every package matches SQLSTATEs this way,
// never by an error's text.
func SQLState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}
