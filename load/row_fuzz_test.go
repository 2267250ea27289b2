package load

import (
	"encoding/binary"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// dataRow encodes values as a DataRow's body; nil is NULL.
func dataRow(values ...[]byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(values)))
	for _, v := range values {
		if v == nil {
			b = binary.BigEndian.AppendUint32(b, 0xFFFFFFFF)
			continue
		}
		b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
		b = append(b, v...)
	}
	return b
}

// FuzzDecodeRow decodes anything as a DataRow's body, the bench driver's
// own decoder against pgproto3's: both must take or refuse the same bodies
// and read the same values (NULL as ""). Seeded with the rows the ledger's
// statements return. A crash or a disagreement found is kept in
// testdata/fuzz/FuzzDecodeRow.
func FuzzDecodeRow(f *testing.F) {
	f.Add(dataRow([]byte("90.00")))
	f.Add(dataRow([]byte("1"), []byte("alice"), []byte("100.00")))
	f.Add(dataRow(nil, []byte("")))
	f.Add(dataRow())
	f.Add([]byte{0, 1, 0xFF, 0xFF, 0xFF, 0xFE})
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := decodeRow(body)
		var want pgproto3.DataRow
		werr := want.Decode(body)
		if (err == nil) != (werr == nil) {
			t.Fatalf("decodeRow: %v; pgproto3: %v", err, werr)
		}
		if err != nil {
			return
		}
		if len(got) != len(want.Values) {
			t.Fatalf("%d values, pgproto3 %d", len(got), len(want.Values))
		}
		for i, v := range want.Values {
			if got[i] != string(v) {
				t.Fatalf("value %d: %q, pgproto3 %q", i, got[i], v)
			}
		}
	})
}
