package config

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid is matched by every *Errors: errors.Is(err, ErrInvalid) tells
// an invalid configuration from a file that could not be read.
var ErrInvalid = errors.New("config: invalid configuration")

// RootPath is the Path of an error about the document as a whole, such as
// a YAML syntax error.
const RootPath = "(root)"

// Error is one problem in a configuration.
type Error struct {
	// Path locates the bad value with YAML keys and indexes:
	// "clusters[1].endpoints[0].address", or RootPath. Never empty.
	Path string
	// Line is the 1-based line of the value in the YAML, or 0 when there is
	// none (a Config built in Go, or a required key missing from an empty
	// document).
	Line int
	// Msg says what is wrong, naming the bad value.
	Msg string
}

// Error formats e as "path: msg (line N)", without the line when it is 0.
func (e Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s: %s (line %d)", e.Path, e.Msg, e.Line)
	}
	return e.Path + ": " + e.Msg
}

// Errors is every problem Parse, Load or Validate found, in document
// order. It is never empty.
type Errors struct {
	List []Error
}

// Error returns the errors one per line.
func (e *Errors) Error() string {
	var b strings.Builder
	for i, x := range e.List {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(x.Error())
	}
	return b.String()
}

// Is reports whether target is ErrInvalid.
func (e *Errors) Is(target error) bool { return target == ErrInvalid }
