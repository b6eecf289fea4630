// pgha-arbiter: the lease server of a pgha cluster, run as a global swarm service on every manager
// node with the Docker socket mounted. It alone talks to Docker about the lease: one lease per
// cluster, kept in the labels of a swarm config object (PGHA_LEASE_CONFIG) and changed only by
// compare-and-swap on the object's version, so that every arbiter, on whichever manager, works on
// the same state through swarmkit's raft store. A server holds the lease by renewing it; the
// arbiters declare it expired only when they have watched it unchanged for a full TTL on their own
// clocks (observer.go). The rules are in lease.go, the protocol in server.go.
//
// Settings (environment):
//
//	PGHA_LEASE_CONFIG     the lease object's name (required); made when there is none
//	PGHA_TTL_MS           10000  how long a lease must be seen unchanged to have expired
//	PGHA_CALL_TIMEOUT_MS  1000   deadline of each Docker API call and of each request's handling
//	PGHA_POLL_MS          500    how often the lease object is read between requests
//	PGHA_LISTEN           :7400  the TCP address to serve on
//	PGHA_TOKEN_FILE       /run/secrets/pgha-arbiter-token  the clients' shared token (non-empty)
//	DOCKER_HOST           unix:///var/run/docker.sock  (only unix:// sockets)
//
// Exit status 2: a setting is wrong (the message says which); 1: the listener failed.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Settings are the arbiter's settings, read from the environment.
type Settings struct {
	Config    string
	TTL       time.Duration
	Timeout   time.Duration
	Poll      time.Duration
	Listen    string
	TokenFile string
	Socket    string // the Docker socket's path
	Token     string
}

// loadSettings reads the settings; getenv and readFile are os.Getenv and os.ReadFile but for tests.
func loadSettings(getenv func(string) string, readFile func(string) ([]byte, error)) (Settings, error) {
	s := Settings{Config: getenv("PGHA_LEASE_CONFIG"), Listen: or(getenv("PGHA_LISTEN"), ":7400"),
		TokenFile: or(getenv("PGHA_TOKEN_FILE"), "/run/secrets/pgha-arbiter-token")}
	if s.Config == "" {
		return s, errors.New("PGHA_LEASE_CONFIG is not set: it names the swarm config object that holds the lease")
	}
	for _, d := range []struct {
		name string
		def  int
		to   *time.Duration
	}{{"PGHA_TTL_MS", 10000, &s.TTL}, {"PGHA_CALL_TIMEOUT_MS", 1000, &s.Timeout}, {"PGHA_POLL_MS", 500, &s.Poll}} {
		v := getenv(d.name)
		n := d.def
		if v != "" {
			var err error
			n, err = strconv.Atoi(v)
			if err != nil || n <= 0 || n > 24*3600*1000 {
				return s, fmt.Errorf("%s=%q: give a whole number of milliseconds above 0", d.name, v)
			}
		}
		*d.to = time.Duration(n) * time.Millisecond
	}
	host := or(getenv("DOCKER_HOST"), "unix:///var/run/docker.sock")
	path, ok := strings.CutPrefix(host, "unix://")
	if !ok || path == "" {
		return s, fmt.Errorf("DOCKER_HOST=%q: only a unix socket (unix:///path) is supported", host)
	}
	s.Socket = path
	b, err := readFile(s.TokenFile)
	if err != nil {
		return s, fmt.Errorf("PGHA_TOKEN_FILE: the token cannot be read: %v", err)
	}
	s.Token = strings.TrimRight(string(b), "\r\n")
	switch {
	case s.Token == "":
		return s, fmt.Errorf("PGHA_TOKEN_FILE %s is empty: the arbiter does not serve without a token", s.TokenFile)
	case strings.ContainsAny(s.Token, " \t\r\n\v\f"):
		// the token is the first word of a request line
		return s, fmt.Errorf("PGHA_TOKEN_FILE %s: the token contains whitespace (the first word of a request is the "+
			"token): use one word", s.TokenFile)
	}
	return s, nil
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// logger writes one line per message to stdout: an RFC 3339 UTC time, then "pgha-arbiter:".
func logger() func(string, ...any) {
	var mu sync.Mutex
	return func(format string, args ...any) {
		line := time.Now().UTC().Format(time.RFC3339) + " pgha-arbiter: " + fmt.Sprintf(format, args...) + "\n"
		mu.Lock()
		defer mu.Unlock()
		_, _ = os.Stdout.WriteString(line)
	}
}

func main() {
	logf := logger()
	s, err := loadSettings(os.Getenv, os.ReadFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s pgha-arbiter: error: %v\n", time.Now().UTC().Format(time.RFC3339), err)
		os.Exit(2)
	}
	// the token is never logged: only its file
	logf("starting: lease config %s, TTL %d ms, call timeout %d ms, poll %d ms, listen %s, token file %s, "+
		"docker unix://%s", s.Config, s.TTL.Milliseconds(), s.Timeout.Milliseconds(), s.Poll.Milliseconds(),
		s.Listen, s.TokenFile, s.Socket)
	if s.Poll*2 > s.TTL {
		logf("warning: PGHA_POLL_MS is more than half of PGHA_TTL_MS: expiry is noticed late")
	}
	ln, err := net.Listen("tcp", s.Listen)
	if err != nil {
		logf("error: listening on %s: %v", s.Listen, err)
		os.Exit(1)
	}
	logf("listening on %s", ln.Addr())

	obs := NewObserver(time.Now, s.TTL, logf)
	st := &Store{Docker: NewDocker(s.Socket, s.Timeout, logf), Name: s.Config, logf: logf}
	a := NewArbiter(st, obs, tokenHash(s.Token), s.Timeout, s.Poll, time.Now, logf)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go a.PollLoop(ctx)
	go func() {
		<-ctx.Done()
		_ = ln.Close()
	}()
	if err := a.Serve(ln); err != nil {
		logf("error: serving: %v", err)
		os.Exit(1)
	}
	logf("stopping (signal)")
}
