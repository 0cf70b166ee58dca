package h1wire_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/rampart-ha/rampart/internal/h1wire"
)

func ExampleChunkedReader() {
	errBody := errors.New("myproto: bad body")
	body := "5\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n"
	var trailer http.Header
	var cr h1wire.ChunkedReader
	cr.Reset(bufio.NewReader(strings.NewReader(body)), &trailer, h1wire.ChunkedConfig{Err: errBody})
	data, err := io.ReadAll(&cr)
	fmt.Printf("%q %v %v\n", data, err, trailer)

	cr.Reset(bufio.NewReader(strings.NewReader("5 \r\nhello\r\n0\r\n\r\n")), nil, h1wire.ChunkedConfig{Err: errBody})
	_, err = io.ReadAll(&cr)
	fmt.Println(err, errors.Is(err, errBody))
	// Output:
	// "hello world" <nil> map[X-Sum:[42]]
	// myproto: bad body: malformed chunk size true
}
