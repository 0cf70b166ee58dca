package testutil

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ErrExited is returned by [Process] methods that need a running process.
var ErrExited = errors.New("process exited")

// Defaults of [ProcessConfig].
const (
	DefaultStartTimeout = 10 * time.Second
	DefaultStopTimeout  = 3 * time.Second
)

// readyPoll is how often StartProcess calls ProcessConfig.ReadyFunc.
const readyPoll = 20 * time.Millisecond

// outputLines is how many lines of output a Process keeps.
const outputLines = 1000

// ProcessConfig describes a process for [StartProcess].
type ProcessConfig struct {
	// Path is the binary. Required.
	Path string
	// Args are the arguments, without the program name.
	Args []string
	// Env is added to the test process's environment; a later entry for
	// the same key wins. Nil means the environment is inherited as is.
	Env []string
	// Dir is the working directory. Empty means the test's.
	Dir string
	// Name prefixes logged output lines. Empty means the base of Path.
	Name string
	// ReadyLine, when set, must match a line of stdout or stderr before the
	// process counts as started; its submatches are kept (see
	// [Process.ReadyMatch]).
	ReadyLine *regexp.Regexp
	// ReadyFunc, when set, is called every 20ms, after ReadyLine matched,
	// until it returns nil: the process is then started. ctx ends at the
	// start timeout.
	ReadyFunc func(ctx context.Context) error
	// StartTimeout bounds the wait for readiness. Zero means
	// DefaultStartTimeout.
	StartTimeout time.Duration
	// StopTimeout is how long the cleanup waits after SIGTERM before
	// SIGKILL. Zero means DefaultStopTimeout.
	StopTimeout time.Duration
}

// Process is a child process started by [StartProcess]. Its methods are safe
// for concurrent use. Signals go only to this process, through the handle
// that started it, and never after it has been reaped (os.Process uses a
// pidfd on Linux, so a recycled PID is never hit).
type Process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed once the process is reaped and its output drained
	err  error         // the exit error; written before done is closed

	mu      sync.Mutex
	match   []string
	readyCh chan []string // receives the first ReadyLine match
	re      *regexp.Regexp
	lines   []string
}

// StartProcess starts cfg.Path, streams its stdout and stderr line by line
// to tb.Log, and waits until it is ready (see [ProcessConfig]). It fails the
// test if the process exits or the start timeout passes first. A cleanup
// sends SIGTERM (and SIGCONT, in case it is frozen), waits StopTimeout,
// then SIGKILLs and reaps the process.
func StartProcess(tb testing.TB, cfg ProcessConfig) *Process {
	tb.Helper()
	p, err := startProcess(tb, cfg)
	if err != nil {
		tb.Fatalf("StartProcess: %v", err)
	}
	return p
}

// startProcess is StartProcess returning its error; the cleanup is
// registered whatever happens once the process started.
func startProcess(tb testing.TB, cfg ProcessConfig) (*Process, error) {
	if cfg.Path == "" {
		return nil, errors.New("ProcessConfig.Path: empty")
	}
	name := cfg.Name
	if name == "" {
		name = filepath.Base(cfg.Path)
	}
	startTimeout := cmpOr(cfg.StartTimeout, DefaultStartTimeout)
	stopTimeout := cmpOr(cfg.StopTimeout, DefaultStopTimeout)

	cmd := exec.Command(cfg.Path, cfg.Args...)
	cmd.Dir = cfg.Dir
	if cfg.Env != nil {
		cmd.Env = append(os.Environ(), cfg.Env...)
	}
	cmd.SysProcAttr = sysProcAttr()
	// A grandchild holding the pipes must not block Wait forever.
	cmd.WaitDelay = time.Second
	p := &Process{
		name:    name,
		cmd:     cmd,
		done:    make(chan struct{}),
		re:      cfg.ReadyLine,
		readyCh: make(chan []string, 1),
	}
	stdout := &lineWriter{line: func(l string) { p.output(tb, "stdout", l) }}
	stderr := &lineWriter{line: func(l string) { p.output(tb, "stderr", l) }}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	go func() {
		err := cmd.Wait()
		stdout.flush()
		stderr.flush()
		p.err = err
		close(p.done)
	}()
	tb.Cleanup(func() {
		if err := p.Terminate(stopTimeout); err != nil && !errors.Is(err, ErrExited) {
			tb.Logf("%s[%d]: %v", name, p.PID(), err)
		}
	})

	ctx, cancel := context.WithTimeout(tb.Context(), startTimeout)
	defer cancel()
	if err := p.waitReady(ctx, cfg); err != nil {
		_ = p.Kill()
		return nil, fmt.Errorf("%s[%d] not ready: %w\n%s", name, p.PID(), err, strings.Join(p.tail(20), "\n"))
	}
	return p, nil
}

func (p *Process) waitReady(ctx context.Context, cfg ProcessConfig) error {
	if cfg.ReadyLine != nil {
		select {
		case m := <-p.readyCh:
			p.mu.Lock()
			p.match = m
			p.mu.Unlock()
		case <-p.done:
			select {
			case m := <-p.readyCh: // it printed the line, then exited
				p.mu.Lock()
				p.match = m
				p.mu.Unlock()
				return fmt.Errorf("exited right after its ready line: %w", p.exitError())
			default:
			}
			return fmt.Errorf("exited before a line matched %q: %w", cfg.ReadyLine, p.exitError())
		case <-ctx.Done():
			return fmt.Errorf("no line matched %q: %w", cfg.ReadyLine, ctx.Err())
		}
	}
	if cfg.ReadyFunc == nil {
		return nil
	}
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for {
		err := cfg.ReadyFunc(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-tick.C:
		case <-p.done:
			return fmt.Errorf("exited before ReadyFunc succeeded: %w (last ReadyFunc error: %w)", p.exitError(), err)
		case <-ctx.Done():
			return fmt.Errorf("ReadyFunc: %w (last error: %w)", ctx.Err(), err)
		}
	}
}

// output logs one line and looks for the ready line.
func (p *Process) output(tb testing.TB, stream, line string) {
	tb.Logf("%s[%d] %s: %s", p.name, p.PID(), stream, line)
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.lines) == outputLines {
		p.lines = append(p.lines[:0], p.lines[outputLines/2:]...)
	}
	p.lines = append(p.lines, line)
	if p.re != nil {
		if m := p.re.FindStringSubmatch(line); m != nil {
			p.re = nil
			p.readyCh <- m
		}
	}
}

func (p *Process) exitError() error {
	<-p.done
	if p.err == nil {
		return errors.New("exit status 0")
	}
	return p.err
}

func (p *Process) tail(n int) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.lines) > n {
		return append([]string(nil), p.lines[len(p.lines)-n:]...)
	}
	return append([]string(nil), p.lines...)
}

// Name returns the name output lines are logged under.
func (p *Process) Name() string { return p.name }

// PID returns the process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// ReadyMatch returns the submatches of ProcessConfig.ReadyLine (index 0 is
// the whole line's match), or nil without a ReadyLine.
func (p *Process) ReadyMatch() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.match...)
}

// Output returns the last lines (up to 1000) the process wrote to stdout and
// stderr, interleaved as they arrived.
func (p *Process) Output() []string { return p.tail(outputLines) }

// Done returns a channel that is closed once the process has exited, been
// reaped and its output drained. Nobody sends on it.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited and been reaped.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process, or returns [ErrExited] if it has been
// reaped.
func (p *Process) Signal(sig os.Signal) error {
	if p.Exited() {
		return ErrExited
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		if errors.Is(err, os.ErrProcessDone) {
			return ErrExited
		}
		return fmt.Errorf("%s[%d]: signal %v: %w", p.name, p.PID(), sig, err)
	}
	return nil
}

// Wait waits for the process to exit and returns its exit error: nil for
// status 0, an *exec.ExitError otherwise. It returns ctx.Err() if ctx ends
// first; the process keeps running.
func (p *Process) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Kill sends SIGKILL and waits until the process is reaped. Killing an
// exited process does nothing and returns nil.
func (p *Process) Kill() error {
	if err := p.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, ErrExited) {
		return err
	}
	<-p.done
	return nil
}

// Terminate sends SIGTERM (and SIGCONT, so that a frozen process sees it),
// waits up to grace for the exit, then kills. It returns the exit error of a
// process that stopped within grace, an error naming the kill otherwise, and
// [ErrExited] if the process was already gone.
func (p *Process) Terminate(grace time.Duration) error {
	if p.Exited() {
		return ErrExited
	}
	_ = p.Signal(syscall.SIGTERM)
	_ = p.Signal(syscall.SIGCONT)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return p.err
	case <-t.C:
		if err := p.Kill(); err != nil {
			return err
		}
		return fmt.Errorf("%s[%d]: still running %s after SIGTERM, killed", p.name, p.PID(), grace)
	}
}

// lineWriter splits what is written to it into lines (without the
// newline) and hands each to line. exec.Cmd writes to it from one
// goroutine per stream.
type lineWriter struct {
	line func(string)
	buf  []byte
}

// maxLine bounds a buffered partial line.
const maxLine = 64 << 10

func (w *lineWriter) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		chunk := b
		if i >= 0 {
			chunk = b[:i]
		}
		if room := maxLine - len(w.buf); len(chunk) >= room {
			w.buf = append(w.buf, chunk[:room]...)
			b = b[room:]
			w.flush()
			continue
		}
		w.buf = append(w.buf, chunk...)
		if i < 0 {
			break
		}
		b = b[i+1:]
		w.flush()
	}
	return n, nil
}

// flush hands over a pending partial line.
func (w *lineWriter) flush() {
	if len(w.buf) == 0 {
		return
	}
	w.line(strings.TrimSuffix(string(w.buf), "\r"))
	w.buf = w.buf[:0]
}

func cmpOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
