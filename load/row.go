package load

import (
	"encoding/binary"
	"errors"
)

// decodeRow is a DataRow's values as text, NULL as "" as in
// ledger.QueryFirstRow (no statement here reads a NULL). pgproto3's decoder
// would do, but it makes room for many values each time: half of what a
// driven run allocated.
func decodeRow(body []byte) ([]any, error) {
	bad := errors.New("the server sent a malformed DataRow")
	if len(body) < 2 {
		return nil, bad
	}
	n := int(binary.BigEndian.Uint16(body))
	body = body[2:]
	row := make([]any, n)
	for i := range row {
		if len(body) < 4 {
			return nil, bad
		}
		size := int(int32(binary.BigEndian.Uint32(body)))
		body = body[4:]
		if size == -1 {
			row[i] = "" // NULL
			continue
		}
		if size < 0 || len(body) < size {
			return nil, bad
		}
		row[i] = string(body[:size])
		body = body[size:]
	}
	return row, nil
}
