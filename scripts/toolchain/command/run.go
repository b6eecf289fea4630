package main

// Running one command the way pulumi-command 1.2.1 runs it (local/commandOutputs.go run):
//   - argv: interpreter (default /bin/sh -c; cmd /C on Windows) followed by the command text;
//   - directory: dir, else the provider's working directory, which the engine sets to the
//     program's directory when it starts the plugin;
//   - environment: the provider's own, then environment, then PULUMI_COMMAND_STDOUT and
//     PULUMI_COMMAND_STDERR (the previous run's outputs, when not empty and
//     addPreviousOutputInEnv is not false);
//   - stdin: the stdin input when it is not empty;
//   - stdout and stderr are captured (outputs, one final newline trimmed) and, line by line as
//     the command runs, the streams chosen by logging are sent to the engine's log;
//   - a failure (non-zero exit, command not found, cancelled) fails the step with the command
//     and its combined output in the message;
//   - cancelling (Cancel, customTimeouts) kills the interpreter's process only, like the
//     reference's exec.CommandContext: children it started run on, and the step ends when they
//     close stdout and stderr.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"sync"
)

// runSpec is one execution of a command.
type runSpec struct {
	command    string
	in         args
	prevStdout string // outputs of the previous create or update ("" for a create)
	prevStderr string
	logLine    func(line string) // receives each logged line; nil: nothing is logged
}

func defaultInterpreter() []string {
	if runtime.GOOS == "windows" {
		return []string{"cmd", "/C"}
	}
	return []string{"/bin/sh", "-c"}
}

// commandEnv is the environment of the command's process.
func commandEnv(s runSpec) []string {
	env := os.Environ()
	keys := make([]string, 0, len(s.in.Environment))
	for k := range s.in.Environment {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+s.in.Environment[k]) // a later entry wins (os/exec)
	}
	if s.in.addPreviousOutput() {
		if s.prevStdout != "" {
			env = append(env, "PULUMI_COMMAND_STDOUT="+s.prevStdout)
		}
		if s.prevStderr != "" {
			env = append(env, "PULUMI_COMMAND_STDERR="+s.prevStderr)
		}
	}
	return env
}

func run(ctx context.Context, s runSpec) (stdout, stderr string, err error) {
	argv := append(append([]string{}, s.in.Interpreter...), s.command)
	if len(s.in.Interpreter) == 0 {
		argv = append(defaultInterpreter(), s.command)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if s.in.Dir != nil {
		cmd.Dir = *s.in.Dir
	} else if cmd.Dir, err = os.Getwd(); err != nil {
		return "", "", err
	}
	cmd.Env = commandEnv(s)
	if s.in.Stdin != nil && *s.in.Stdin != "" {
		cmd.Stdin = strings.NewReader(*s.in.Stdin)
	}

	var outBuf, errBuf bytes.Buffer
	var both lockedBuffer // both streams interleaved, for the error message
	outLog := &lineWriter{emit: s.logLine, on: s.logLine != nil && s.in.logsStdout()}
	errLog := &lineWriter{emit: s.logLine, on: s.logLine != nil && s.in.logsStderr()}
	cmd.Stdout = io.MultiWriter(&outBuf, &both, outLog)
	cmd.Stderr = io.MultiWriter(&errBuf, &both, errLog)

	err = cmd.Run()
	outLog.flush()
	errLog.flush()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", err, ctx.Err())
		}
		return "", "", fmt.Errorf("%w: running %q:\n%s", err, s.command, both.String())
	}
	return strings.TrimSuffix(outBuf.String(), "\n"), strings.TrimSuffix(errBuf.String(), "\n"), nil
}

// lockedBuffer is written by the stdout and the stderr copier at once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lineWriter passes each complete line of one stream to emit; flush passes the last,
// unterminated one. Each stream has its own, so lines of stdout and stderr never mix.
type lineWriter struct {
	on      bool
	emit    func(string)
	pending []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	if !w.on {
		return len(p), nil
	}
	w.pending = append(w.pending, p...)
	for {
		i := bytes.IndexByte(w.pending, '\n')
		if i < 0 {
			break
		}
		w.emit(strings.TrimSuffix(string(w.pending[:i]), "\r"))
		w.pending = w.pending[i+1:]
	}
	return len(p), nil
}

func (w *lineWriter) flush() {
	if w.on && len(w.pending) > 0 {
		w.emit(string(w.pending))
		w.pending = nil
	}
}
