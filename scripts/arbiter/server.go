package main

// The arbiter: the TCP protocol, the compare-and-swap loop around decide, and the poller that
// keeps the observation (Observer) fed between requests.

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"time"
)

// maxLine bounds a request line: the longest valid one is far shorter.
const maxLine = 1024

// maxConns bounds the connections handled at once; more are answered "unavailable busy" so that a
// flood cannot pile up calls on the Docker API.
const maxConns = 64

// managersEvery: how often the number of managers is asked again (it changes rarely).
const managersEvery = 10 * time.Second

// Arbiter serves the lease of one cluster.
type Arbiter struct {
	Store   *Store
	Obs     *Observer
	Token   [32]byte      // tokenHash of the token
	Timeout time.Duration // each request's whole handling, and each Docker call
	Poll    time.Duration
	logf    func(string, ...any)
	now     func() time.Time

	mu         sync.Mutex
	managers   int       // 0 when unknown
	managersAt time.Time // when they were last asked (zero: never)

	slots chan struct{}
}

// NewArbiter puts the parts together.
func NewArbiter(st *Store, obs *Observer, token [32]byte, timeout, poll time.Duration, now func() time.Time,
	logf func(string, ...any)) *Arbiter {
	return &Arbiter{Store: st, Obs: obs, Token: token, Timeout: timeout, Poll: poll, now: now, logf: logf,
		slots: make(chan struct{}, maxConns)}
}

// Serve accepts connections on ln until it is closed.
func (a *Arbiter) Serve(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		select {
		case a.slots <- struct{}{}:
			go func() {
				defer func() { <-a.slots }()
				a.handle(c)
			}()
		default:
			go func() {
				_ = c.SetDeadline(time.Now().Add(a.Timeout))
				_, _ = io.WriteString(c, "unavailable busy\n")
				_ = c.Close()
			}()
		}
	}
}

// handle serves one connection: one line in, one line out, then close; all within the timeout
// (plus a moment to write the answer: an "unavailable timeout" is worth delivering).
func (a *Arbiter) handle(c net.Conn) {
	defer func() { _ = c.Close() }()
	start := time.Now()
	ctx, cancel := context.WithDeadline(context.Background(), start.Add(a.Timeout))
	defer cancel()
	_ = c.SetReadDeadline(start.Add(a.Timeout))
	line, err := bufio.NewReaderSize(io.LimitReader(c, maxLine+1), maxLine+1).ReadString('\n')
	var resp string
	switch {
	case err == nil:
		resp = a.Respond(ctx, strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r"))
	case len(line) > maxLine:
		resp = "bad too_long"
	case isTimeout(err):
		resp = "bad timeout"
	default:
		// the line has no newline: it may have been cut short, so it is not acted on
		resp = "bad unterminated"
	}
	_ = c.SetWriteDeadline(time.Now().Add(250 * time.Millisecond))
	_, _ = io.WriteString(c, resp+"\n")
	// Closing with unread input makes the kernel reset the connection, and the client may then
	// lose the answer it has not read yet: say we are done, and drain what it still sends, briefly.
	if tc, ok := c.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
		_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10))
	}
}

// Respond answers one request line (without its newline).
func (a *Arbiter) Respond(ctx context.Context, line string) string {
	r, bad := parseRequest(line, a.Token)
	if bad != "" {
		if bad == "denied" {
			a.logf("denied a request with a wrong token")
		}
		return bad
	}
	return a.Execute(ctx, r)
}

// Execute carries out a parsed request: a fresh read (which also feeds the observation), the
// decision, and the write as a compare-and-swap on the version read. When the write loses a race
// (someone wrote in between) the request is decided again on a fresh read, once.
func (a *Arbiter) Execute(ctx context.Context, r Request) string {
	for attempt := 1; ; attempt++ {
		c, cur, err := a.Store.Read(ctx)
		if err != nil {
			return a.unavailable(r, err)
		}
		v := a.Obs.Observed(c.ID, c.Version, cur)
		v.Managers = a.Managers()
		next, resp := decide(r, cur, v)
		if next == nil {
			if logged(r.Verb) {
				a.logf("%s: %s (%s at version %d, expired %s)", r.describe(), resp, cur.text(), c.Version,
					bit(v.Expired))
			}
			return resp
		}
		err = a.Store.Write(ctx, c, *next)
		if errors.Is(err, errOutOfSequence) {
			if attempt < 2 {
				continue
			}
			if logged(r.Verb) {
				a.logf("%s: unavailable race (lost the compare-and-swap twice)", r.describe())
			}
			return "unavailable race"
		}
		if err != nil {
			// it may have been written all the same (a timeout): the caller reads again
			return a.unavailable(r, err)
		}
		a.Obs.Wrote(c.ID, c.Version, *next)
		if logged(r.Verb) {
			a.logf("%s: granted: %s (was %s at version %d, expired %s)", r.describe(), resp, cur.text(), c.Version,
				bit(v.Expired))
		}
		return resp
	}
}

func (a *Arbiter) unavailable(r Request, err error) string {
	reason := reasonOf(err)
	a.Obs.Failed(reason)
	if logged(r.Verb) {
		a.logf("%s: unavailable %s (%v)", r.describe(), reason, err)
	}
	return "unavailable " + reason
}

// Managers is the number of manager nodes last counted, 0 when unknown.
func (a *Arbiter) Managers() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.managers
}

// PollLoop reads the lease object every Poll until ctx ends, so that the observation goes on between
// requests (expiry is a full TTL of watching), and counts the managers every managersEvery.
func (a *Arbiter) PollLoop(ctx context.Context) {
	t := time.NewTicker(a.Poll)
	defer t.Stop()
	for {
		a.pollOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (a *Arbiter) pollOnce(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, a.Timeout)
	defer cancel()
	if c, cur, err := a.Store.Read(rctx); err != nil {
		if ctx.Err() == nil {
			a.Obs.Failed(reasonOf(err))
		}
	} else {
		a.Obs.Observed(c.ID, c.Version, cur)
	}
	a.mu.Lock()
	due := a.managersAt.IsZero() || a.now().Sub(a.managersAt) >= managersEvery
	a.mu.Unlock()
	if !due {
		return
	}
	mctx, mcancel := context.WithTimeout(ctx, a.Timeout)
	defer mcancel()
	n, err := a.Store.Docker.Managers(mctx)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.managersAt = a.now()
	if err != nil {
		n = 0
	}
	if n != a.managers {
		a.logf("managers in the swarm: %d (0: unknown)", n)
	}
	a.managers = n
}
