package ocsp

import (
	"math/big"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/strongroom-pki/strongroom/core"
)

// serialViaBig is the reference: cryptobyte's INTEGER reader and big.Int.
func serialViaBig(content []byte) (core.Serial, bool) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.INTEGER, func(b *cryptobyte.Builder) { b.AddBytes(content) })
	der, err := b.Bytes()
	if err != nil {
		return "", false
	}
	n := new(big.Int)
	in := cryptobyte.String(der)
	if !in.ReadASN1Integer(n) || n.Sign() <= 0 || n.BitLen() > 160 {
		return "", false
	}
	return core.SerialFromBig(n), true
}

func TestSerialFromDERMatchesBigInt(t *testing.T) {
	cases := [][]byte{
		{}, {0}, {1}, {0x7f}, {0x80}, {0xff}, {0, 0x80}, {0, 0x7f}, {0, 0}, {0xff, 0x80}, {0xff, 0x7f},
		{0x0f, 0xff}, {0x00, 0x8f, 0xff}, {0x01, 0x00},
		append([]byte{0x7f}, make([]byte, 19)...), append([]byte{0x01}, make([]byte, 20)...),
		append([]byte{0x00, 0xff}, make([]byte, 19)...), append([]byte{0x00, 0xff}, make([]byte, 20)...),
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		b := make([]byte, rng.IntN(23))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		if len(b) > 0 && rng.IntN(4) == 0 {
			b[0] &= 0x0f
		}
		cases = append(cases, b)
	}
	for _, c := range cases {
		got, gotOK := serialFromDER(c)
		want, wantOK := serialViaBig(c)
		if got != want || gotOK != wantOK {
			t.Fatalf("serialFromDER(%x) = %q %v; big.Int gives %q %v", c, got, gotOK, want, wantOK)
		}
	}
}

func TestAppendHTTPDateMatchesTimeFormat(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	times := []time.Time{time.Unix(0, 0), time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(999, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 2, 28, 23, 59, 59, 999, time.FixedZone("x", -5*3600))}
	for i := 0; i < 20000; i++ {
		times = append(times, time.Unix(rng.Int64N(1<<36)-1<<35, 0))
	}
	for _, tm := range times {
		if got, want := string(appendHTTPDate([]byte("x"), tm)), "x"+tm.UTC().Format(http.TimeFormat); got != want {
			t.Fatalf("appendHTTPDate(%v) = %q, want %q", tm, got, want)
		}
	}
}
