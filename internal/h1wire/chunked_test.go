package h1wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var errTest = errors.New("test: malformed body")

// keepNoHost is a KeepTrailer that drops Host.
func keepNoHost(k string) bool { return k != "Host" }

var chunkedTests = []struct {
	name    string
	in      string
	cfg     ChunkedConfig
	start   http.Header // the trailer before reading
	want    string
	trailer http.Header
	err     error
}{
	{name: "simple", in: "5\r\nhello\r\n0\r\n\r\n", want: "hello"},
	{name: "two chunks", in: "3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n", want: "hello"},
	{name: "extension", in: "5;a=b;c=\"d e\"\r\nhello\r\n0;x\r\n\r\n", want: "hello"},
	{name: "upper hex and leading zeros", in: "0A\r\n0123456789\r\n00\r\n\r\n", want: "0123456789"},
	{name: "append trailer", in: "5\r\nhello\r\n0\r\nX-Sum: 1\r\nx-sum:  2 \r\nHost: evil\r\n\r\n", want: "hello",
		start: http.Header{"X-Sum": nil, "X-Old": {"o"}}, trailer: http.Header{"X-Sum": {"1", "2"}, "X-Old": {"o"}, "Host": {"evil"}}},
	{name: "replace trailer, filtered", in: "5\r\nhello\r\n0\r\nX-Sum: 1\r\nx-sum: 2\r\nHost: evil\r\n\r\n", want: "hello",
		cfg:   ChunkedConfig{KeepTrailer: keepNoHost, Merge: TrailerReplace},
		start: http.Header{"X-Sum": {"0"}, "X-Old": {"o"}}, trailer: http.Header{"X-Sum": {"1", "2"}, "X-Old": {"o"}}},
	{name: "replace into nil", in: "0\r\nX-A: 1\r\n\r\n", cfg: ChunkedConfig{Merge: TrailerReplace},
		trailer: http.Header{"X-A": {"1"}}},
	{name: "replace, none kept", in: "0\r\nHost: a\r\n\r\n", cfg: ChunkedConfig{KeepTrailer: keepNoHost, Merge: TrailerReplace}},
	{name: "replace, bad field keeps header", in: "0\r\nX-A: 1\r\nbad\r\n\r\n", cfg: ChunkedConfig{Merge: TrailerReplace},
		start: http.Header{"X-A": {"0"}}, trailer: http.Header{"X-A": {"0"}}, err: ErrMalformedChunk},
	{name: "space after size", in: "5 \r\nhello\r\n0\r\n\r\n", err: ErrMalformedChunk},
	{name: "space after size, lenient", in: "5 \t\r\nhello\r\n0\r\n\r\n", cfg: ChunkedConfig{Lenient: true}, want: "hello"},
	{name: "space before extension, lenient", in: "5 ;x\r\nhello\r\n0\r\n\r\n", cfg: ChunkedConfig{Lenient: true},
		err: ErrMalformedChunk},
	{name: "control in extension", in: "5;a\x01\r\nhello\r\n0\r\n\r\n", err: ErrMalformedChunk},
	{name: "control in extension, lenient", in: "5;a\x01\r\nhello\r\n0\r\n\r\n", cfg: ChunkedConfig{Lenient: true},
		want: "hello"},
	{name: "configured error", in: "g\r\n", cfg: ChunkedConfig{Err: errTest}, err: errTest},
	{name: "bare LF size", in: "5\nhello\r\n0\r\n\r\n", err: ErrMalformedChunk},
	{name: "bare LF after data", in: "5\r\nhello\n0\r\n\r\n", err: ErrMalformedChunk},
	{name: "bare LF last", in: "5\r\nhello\r\n0\n\r\n", err: ErrMalformedChunk},
	{name: "CR in size", in: "5\r\r\nhello\r\n0\r\n\r\n", err: ErrMalformedChunk},
	{name: "no CRLF after data", in: "5\r\nhelloX\r\n0\r\n\r\n", err: ErrMalformedChunk},
	{name: "space before size", in: " 5\r\nhello\r\n0\r\n\r\n", err: ErrMalformedChunk},
	{name: "sign", in: "+5\r\nhello\r\n0\r\n\r\n", err: ErrMalformedChunk},
	{name: "0x", in: "0x5\r\nhello\r\n0\r\n\r\n", err: ErrMalformedChunk},
	{name: "empty size", in: "\r\nhello\r\n0\r\n\r\n", err: ErrMalformedChunk},
	{name: "too many digits", in: "00000000000000005\r\nhello\r\n0\r\n\r\n", err: ErrMalformedChunk},
	{name: "above int64", in: "8000000000000000\r\n", err: ErrMalformedChunk},
	{name: "line too long", in: "5;" + strings.Repeat("x", 5000) + "\r\nhello\r\n0\r\n\r\n", err: ErrMalformedChunk},
	// TrailerAppend stores the fields read before the bad one.
	{name: "obs-fold trailer", in: "0\r\nX: a\r\n b\r\n\r\n", trailer: http.Header{"X": {"a"}}, err: ErrMalformedChunk},
	{name: "space before colon trailer", in: "0\r\nX : a\r\n\r\n", err: ErrMalformedChunk},
	{name: "trailer too large", in: "0\r\nX-A: 12345\r\n\r\n", cfg: ChunkedConfig{MaxTrailerBytes: 11}, err: ErrMalformedChunk},
	{name: "trailer at its bound", in: "0\r\nX-A: 1234\r\n\r\n", cfg: ChunkedConfig{MaxTrailerBytes: 11},
		trailer: http.Header{"X-A": {"1234"}}},
	{name: "truncated", in: "5\r\nhel", err: io.ErrUnexpectedEOF},
	{name: "no last chunk", in: "5\r\nhello\r\n", err: io.ErrUnexpectedEOF},
	{name: "no final CRLF", in: "5\r\nhello\r\n0\r\n", err: io.ErrUnexpectedEOF},
	{name: "too much framing", in: strings.Repeat("1;"+strings.Repeat("x", 2000)+"\r\na\r\n", 20) + "0\r\n\r\n",
		cfg: ChunkedConfig{Lenient: true}, err: ErrMalformedChunk},
	{name: "framing within the allowance", in: strings.Repeat("1;"+strings.Repeat("x", 2000)+"\r\na\r\n", 5) + "0\r\n\r\n",
		want: "aaaaa"},
}

func TestChunkedReader(t *testing.T) {
	for _, tt := range chunkedTests {
		t.Run(tt.name, func(t *testing.T) {
			trailer := tt.start.Clone() // the table's map is shared by every run
			var cr ChunkedReader
			cr.Reset(bufio.NewReaderSize(strings.NewReader(tt.in), 4096), &trailer, tt.cfg)
			got, err := io.ReadAll(&cr)
			if !errors.Is(err, tt.err) {
				t.Fatalf("decoding %q = %v, want %v", tt.in, err, tt.err)
			}
			if tt.err != nil && !errors.Is(tt.err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrMalformedChunk) {
				t.Errorf("decoding %q = %v, want it to match ErrMalformedChunk too", tt.in, err)
			}
			if err == nil && string(got) != tt.want {
				t.Errorf("decoding %q = %q, want %q", tt.in, got, tt.want)
			}
			if diff := cmp.Diff(trailer, tt.trailer); diff != "" {
				t.Errorf("decoding %q: trailer (-got +want):\n%s", tt.in, diff)
			}
			if n, err2 := cr.Read(make([]byte, 1)); n != 0 || (err == nil) != errors.Is(err2, io.EOF) {
				t.Errorf("Read after the end = %d, %v; want 0 and the sticky error", n, err2)
			}
		})
	}
}

func TestChunkedErrorText(t *testing.T) {
	var cr ChunkedReader
	cr.Reset(bufio.NewReader(strings.NewReader("g\r\n")), nil, ChunkedConfig{Err: errTest})
	_, err := io.ReadAll(&cr)
	if got, want := err.Error(), "test: malformed body: malformed chunk size"; got != want {
		t.Errorf("Read error = %q, want %q", got, want)
	}
}

// FuzzChunkedReader checks the chunked decoder in its strict and lenient
// modes: it never panics, whatever it decodes net/http's decoder decodes
// the same, every error is a malformation or a truncation, the strict mode
// accepts nothing the lenient one refuses, and it decodes what httputil's
// encoder wrote.
func FuzzChunkedReader(f *testing.F) {
	for _, tt := range chunkedTests {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var strictOK bool
		for _, lenient := range []bool{false, true} {
			var trailer http.Header
			var cr ChunkedReader
			cr.Reset(bufio.NewReaderSize(bytes.NewReader(in), 4096), &trailer,
				ChunkedConfig{Err: errTest, Lenient: lenient, Merge: TrailerReplace})
			got, err := io.ReadAll(&cr)
			switch {
			case err == nil:
				want, werr := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(in)))
				if werr != nil || !bytes.Equal(got, want) {
					t.Errorf("decoding %q (lenient %v) = %q; httputil's reader = %q, %v", in, lenient, got, want, werr)
				}
			case errors.Is(err, ErrMalformedChunk) && errors.Is(err, errTest), errors.Is(err, io.ErrUnexpectedEOF):
			default:
				t.Errorf("decoding %q (lenient %v) = %v, want a malformation or io.ErrUnexpectedEOF", in, lenient, err)
			}
			if !lenient {
				strictOK = err == nil
			} else if strictOK && err != nil {
				t.Errorf("decoding %q: strict accepts, lenient = %v", in, err)
			}
		}

		// Round trip: encode the input as data, decode it again.
		var enc bytes.Buffer
		w := httputil.NewChunkedWriter(&enc)
		_, _ = w.Write(in)
		_, _ = w.Write(in[:len(in)/2])
		_ = w.Close()
		enc.WriteString("X-Sum: 1\r\n\r\n")
		var trailer http.Header
		var cr ChunkedReader
		cr.Reset(bufio.NewReaderSize(&enc, 4096), &trailer, ChunkedConfig{})
		dec, err := io.ReadAll(&cr)
		if want := append(append([]byte{}, in...), in[:len(in)/2]...); err != nil || !bytes.Equal(dec, want) {
			t.Fatalf("round trip of %q = %q, %v", want, dec, err)
		}
		if trailer.Get("X-Sum") != "1" {
			t.Errorf("round trip trailer = %v, want X-Sum: 1", trailer)
		}
	})
}

func BenchmarkChunkedReader(b *testing.B) {
	in := strings.Repeat("400\r\n"+strings.Repeat("x", 1024)+"\r\n", 64) + "0\r\nX-Sum: 1\r\n\r\n"
	src := strings.NewReader(in)
	br := bufio.NewReaderSize(src, 4096)
	buf := make([]byte, 32<<10)
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		src.Reset(in)
		br.Reset(src)
		var trailer http.Header
		var cr ChunkedReader
		cr.Reset(br, &trailer, ChunkedConfig{})
		for {
			if _, err := cr.Read(buf); err != nil {
				if !errors.Is(err, io.EOF) {
					b.Fatal(err)
				}
				break
			}
		}
	}
}
