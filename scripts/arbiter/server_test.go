package main

// The arbiter as a whole, against the fake Docker API (fakedocker_test.go): the compare-and-swap
// loop, lost races, the store failing, the lease object's making, expiry on the arbiter's clock,
// the TCP protocol and the settings.

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const leaseName = "pgha_net-lease"

type testArbiter struct {
	*Arbiter
	clock *fakeClock
	log   *logLines
}

func newTestArbiter(t *testing.T, sock string) testArbiter {
	c, l := newClock(), &logLines{}
	st := &Store{Docker: NewDocker(sock, time.Second, l.logf), Name: leaseName, logf: l.logf}
	obs := NewObserver(c.now, ttl, l.logf)
	return testArbiter{NewArbiter(st, obs, testToken, time.Second, 500*time.Millisecond, c.now, l.logf), c, l}
}

func (a testArbiter) do(line string) string {
	ctx, cancel := context.WithTimeout(context.Background(), a.Timeout)
	defer cancel()
	return a.Respond(ctx, "s3cret "+line)
}

func (a testArbiter) expect(t *testing.T, line, want string) {
	t.Helper()
	if got := a.do(line); got != want {
		t.Fatalf("%s: %q, want %q", line, got, want)
	}
}

func TestMakesTheLeaseObject(t *testing.T) {
	f := newFakeDocker(t)
	a := newTestArbiter(t, f.Sock)
	a.expect(t, "read", "ok - 0 0 0 0")
	c := f.byName(leaseName)
	if c == nil {
		t.Fatal("no lease object")
	}
	if string(c.Data) != leaseNote || c.Labels[labelMark] != "1" || c.Labels[labelHolder] != "" ||
		c.Labels[labelTerm] != "0" || c.Labels[labelSeq] != "0" {
		t.Errorf("lease object: labels %v, data %q", c.Labels, c.Data)
	}
	if !a.log.has("created lease config " + leaseName) {
		t.Errorf("the creation is not logged: %v", a.log.lines)
	}
	// a second arbiter uses it; and the first one reads it by ID from now on
	b := newTestArbiter(t, f.Sock)
	b.expect(t, "read", "ok - 0 0 0 0")
	a.expect(t, "read", "ok - 0 0 0 0")
	if n := f.count("POST " + f.prefix() + "/configs/create"); n != 1 {
		t.Errorf("%d creations", n)
	}
	if n := f.count("GET " + f.prefix() + "/configs/" + c.ID); n != 2 {
		t.Errorf("the object is not read by its ID: %v", f.calls)
	}
}

func TestFindsTheExactName(t *testing.T) {
	// the engine's name filter also matches the names that begin with the one asked for
	f := newFakeDocker(t)
	f.add(leaseName+"-old", withLease(initialLabels(), Lease{"pg9", 9, 9}))
	f.add(leaseName+"2", withLease(initialLabels(), Lease{"pg8", 8, 8}))
	f.add(leaseName, withLease(initialLabels(), Lease{"pg1", 3, 5}))
	newTestArbiter(t, f.Sock).expect(t, "read", "ok pg1 3 0 0 0")
	if n := f.count("POST " + f.prefix() + "/configs/create"); n != 0 {
		t.Errorf("%d creations", n)
	}
}

func TestCreationRace(t *testing.T) {
	// another arbiter makes the object between this one's look-up and its create: 409, and this
	// one uses the other's object
	f := newFakeDocker(t)
	f.beforeCreate = func(f *fakeDocker, name string) {
		f.add(name, withLease(initialLabels(), Lease{"pg2", 1, 1}))
		f.beforeCreate = nil
	}
	newTestArbiter(t, f.Sock).expect(t, "read", "ok pg2 1 0 0 0")
	if len(f.configs) != 1 {
		t.Errorf("%d configs", len(f.configs))
	}
}

func TestCompareAndSwap(t *testing.T) {
	f := newFakeDocker(t)
	a := newTestArbiter(t, f.Sock)
	a.expect(t, "claim pg1", "ok pg1 1")
	if l := f.lease(leaseName); l != (Lease{"pg1", 1, 1}) {
		t.Fatalf("after claim: %+v", l)
	}
	a.expect(t, "renew pg1 1", "ok pg1 1")
	a.expect(t, "renew pg1 1", "ok pg1 1")
	if l := f.lease(leaseName); l != (Lease{"pg1", 1, 3}) {
		t.Fatalf("after two renewals: %+v", l)
	}
	a.expect(t, "renew pg2 1", "lost pg1 1")
	a.expect(t, "acquire pg2 1", "refused pg1 1 held")
	a.expect(t, "handover pg1 1 pg2", "ok pg2 2")
	a.expect(t, "release pg1 2", "lost pg2 2")
	a.expect(t, "release pg2 2", "ok - 2")
	a.expect(t, "acquire pg1 1", "refused - 2 term")
	a.expect(t, "acquire pg1 2", "ok pg1 3")
	c := f.byName(leaseName)
	if l := f.lease(leaseName); l != (Lease{"pg1", 3, 6}) {
		t.Fatalf("at the end: %+v", l)
	}
	// only the labels changed, and the other labels stayed
	if string(c.Data) != leaseNote || c.Labels[labelMark] != "1" {
		t.Errorf("labels %v, data %q", c.Labels, c.Data)
	}
	for _, want := range []string{
		"claim pg1: granted: ok pg1 1",
		"acquire pg2 seen term 1: refused pg1 1 held",
		"handover pg1 term 1 to pg2: granted: ok pg2 2",
		"release pg1 term 2: lost pg2 2",
		"release pg2 term 2: granted: ok - 2",
		"acquire pg1 seen term 2: granted: ok pg1 3",
	} {
		if !a.log.has(want) {
			t.Errorf("not logged: %q in %v", want, a.log.lines)
		}
	}
	for _, s := range a.log.lines {
		if strings.Contains(s, "s3cret") || strings.Contains(s, "renew") {
			t.Errorf("logged: %q", s)
		}
	}
}

func TestLostRaceIsDecidedAgain(t *testing.T) {
	f := newFakeDocker(t)
	a := newTestArbiter(t, f.Sock)
	a.expect(t, "claim pg1", "ok pg1 1")
	// another arbiter writes a renewal between this one's read and its write: the write is
	// refused, the request is read and decided again, and succeeds
	f.set(func(f *fakeDocker) {
		f.beforeUpdate = func(f *fakeDocker, c *fakeConfig) {
			f.write(c, Lease{"pg1", 1, 2})
			f.beforeUpdate = nil
		}
	})
	a.expect(t, "renew pg1 1", "ok pg1 1")
	if l := f.lease(leaseName); l != (Lease{"pg1", 1, 3}) {
		t.Fatalf("%+v", l)
	}
	if n := f.count("POST " + f.prefix() + "/configs/" + f.byName(leaseName).ID + "/update"); n != 3 {
		t.Errorf("%d updates, want 3 (claim, the lost one, the retry)", n)
	}
}

func TestLostRaceChangesTheAnswer(t *testing.T) {
	f := newFakeDocker(t)
	a := newTestArbiter(t, f.Sock)
	a.expect(t, "claim pg1", "ok pg1 1")
	a.expect(t, "read", "ok pg1 1 0 0 0")
	a.clock.advance(ttl)
	// pg2 acquires the expired lease, but another arbiter hands it to pg3 in between: on the
	// fresh read the seen term is stale, and nothing is written
	f.set(func(f *fakeDocker) {
		f.beforeUpdate = func(f *fakeDocker, c *fakeConfig) {
			f.write(c, Lease{"pg3", 2, 2})
			f.beforeUpdate = nil
		}
	})
	a.expect(t, "acquire pg2 1", "refused pg3 2 term")
	if l := f.lease(leaseName); l != (Lease{"pg3", 2, 2}) {
		t.Fatalf("%+v", l)
	}
}

func TestRaceLostTwice(t *testing.T) {
	f := newFakeDocker(t)
	a := newTestArbiter(t, f.Sock)
	a.expect(t, "claim pg1", "ok pg1 1")
	f.set(func(f *fakeDocker) {
		f.beforeUpdate = func(f *fakeDocker, c *fakeConfig) { f.write(c, Lease{"pg1", 1, 100}) }
	})
	a.expect(t, "renew pg1 1", "unavailable race")
	if n := f.count("POST " + f.prefix() + "/configs/" + f.byName(leaseName).ID + "/update"); n != 3 {
		t.Errorf("%d updates, want 3 (claim, two lost ones)", n)
	}
}

func TestStoreUnavailable(t *testing.T) {
	f := newFakeDocker(t)
	a := newTestArbiter(t, f.Sock)
	a.expect(t, "claim pg1", "ok pg1 1")
	// the read after its own write sees the write's version: the TTL counts from that read
	a.expect(t, "read", "ok pg1 1 0 0 0")
	a.clock.advance(ttl)
	a.expect(t, "read", "ok pg1 1 1 10000 0")
	f.set(func(f *fakeDocker) {
		f.failStatus, f.failMsg = 503, "The swarm does not have a leader. It's possible that too few managers are "+
			"online. Make sure more than half of the managers are online."
	})
	for _, line := range []string{"read", "renew pg1 1", "acquire pg2 1", "claim pg2"} {
		a.expect(t, line, "unavailable no_leader")
	}
	f.set(func(f *fakeDocker) {
		f.failStatus, f.failMsg = 500, "rpc error: code = Unavailable desc = connection error"
	})
	a.expect(t, "read", "unavailable docker_500:rpc_error:_code_=_Unavailable_desc_=_connection_error")
	f.set(func(f *fakeDocker) {
		f.failStatus, f.failMsg = 503, "This node is not a swarm manager. Use \"docker swarm init\" or ..."
	})
	a.expect(t, "read", "unavailable not_manager")
	if !a.log.has("store unavailable: no_leader") {
		t.Errorf("not logged: %v", a.log.lines)
	}
	// back: the lease was not renewed meanwhile, but the arbiter could not see that, so it is
	// held for a full TTL from now
	a.clock.advance(time.Minute)
	f.set(func(f *fakeDocker) { f.failStatus = 0 })
	a.expect(t, "acquire pg2 1", "refused pg1 1 held")
	a.clock.advance(ttl - time.Millisecond)
	a.expect(t, "acquire pg2 1", "refused pg1 1 held")
	a.clock.advance(time.Millisecond)
	a.expect(t, "acquire pg2 1", "ok pg2 2")
}

func TestTimeout(t *testing.T) {
	f := newFakeDocker(t)
	a := newTestArbiter(t, f.Sock)
	a.Store.Docker.timeout = 200 * time.Millisecond
	a.expect(t, "claim pg1", "ok pg1 1")
	f.set(func(f *fakeDocker) { f.delay = 2 * time.Second })
	t0 := time.Now()
	a.expect(t, "renew pg1 1", "unavailable timeout")
	if d := time.Since(t0); d > time.Second {
		t.Errorf("took %v", d)
	}
}

func TestAPIVersion(t *testing.T) {
	f := newFakeDocker(t)
	a := newTestArbiter(t, f.Sock)
	a.expect(t, "read", "ok - 0 0 0 0")
	if !a.log.has("speaks API 1.41: using v1.41") {
		t.Errorf("not logged: %v", a.log.lines)
	}
	// the engine replaced by a newer one that no longer speaks 1.41: refused once, then agreed again
	f.set(func(f *fakeDocker) { f.api = "1.52" })
	a.expect(t, "read", "unavailable docker_400:client_version_v1.41_is_not_1.52")
	f.set(func(f *fakeDocker) { f.api = "1.50" })
	a.expect(t, "read", "ok - 0 0 0 0")
	// newer than any version known here: the newest known one
	f.set(func(f *fakeDocker) { f.api = "1.52" })
	b := newTestArbiter(t, f.Sock)
	if v, err := b.Store.Docker.version(context.Background()); v != "v1.50" || err != nil {
		t.Errorf("API 1.52: %q %v", v, err)
	}
	// too old for configs
	f.set(func(f *fakeDocker) { f.api = "1.29" })
	newTestArbiter(t, f.Sock).expect(t, "read", "unavailable docker_api_too_old")
}

func TestDockerUnreachable(t *testing.T) {
	a := newTestArbiter(t, filepath.Join(t.TempDir(), "none.sock"))
	a.expect(t, "read", "unavailable docker_unreachable")
}

func TestUnreadableLabels(t *testing.T) {
	f := newFakeDocker(t)
	f.add(leaseName, map[string]string{labelHolder: "pg1", labelTerm: "x", labelSeq: "1"})
	a := newTestArbiter(t, f.Sock)
	a.expect(t, "read", "unavailable bad_lease_labels")
	a.expect(t, "claim pg1", "unavailable bad_lease_labels")
}

func TestExpiryOnTheArbitersClock(t *testing.T) {
	f := newFakeDocker(t)
	a := newTestArbiter(t, f.Sock)
	a.expect(t, "claim pg1", "ok pg1 1")
	a.expect(t, "acquire pg2 1", "refused pg1 1 held")
	// the poller feeds the observation between requests; a same version is no change
	for range 19 {
		a.clock.advance(ttl / 20)
		a.pollOnce(context.Background())
	}
	a.clock.advance(ttl/20 - time.Millisecond)
	a.expect(t, "acquire pg2 1", "refused pg1 1 held")
	a.clock.advance(time.Millisecond)
	a.expect(t, "read", "ok pg1 1 1 10000 3")
	a.expect(t, "acquire pg2 1", "ok pg2 2")
	// the old holder's next renewal finds it lost: it must fence
	a.expect(t, "renew pg1 1", "lost pg2 2")
	a.expect(t, "read", "ok pg2 2 0 0 3")

	// a second arbiter that starts now waits its own full TTL, whatever the first one saw
	b := newTestArbiter(t, f.Sock)
	b.clock.advance(time.Hour) // its clock has nothing to do with a's
	b.expect(t, "read", "ok pg2 2 0 0 0")
	a.clock.advance(ttl)
	b.clock.advance(ttl - time.Millisecond)
	a.expect(t, "read", "ok pg2 2 1 10000 3")
	b.expect(t, "acquire pg3 2", "refused pg2 2 held")
	// a renewal through a: b sees a new version, so b's TTL starts again
	a.expect(t, "renew pg2 2", "ok pg2 2")
	b.clock.advance(time.Millisecond)
	b.expect(t, "acquire pg3 2", "refused pg2 2 held")
	b.clock.advance(ttl)
	b.expect(t, "acquire pg3 2", "ok pg3 3")
}

func TestLeaseObjectMadeAgain(t *testing.T) {
	f := newFakeDocker(t)
	a := newTestArbiter(t, f.Sock)
	a.expect(t, "claim pg1", "ok pg1 1")
	f.set(func(f *fakeDocker) { delete(f.configs, f.byName(leaseName).ID) })
	// deleted under its holder: made again, free at term 0; the old holder's renewal is lost
	a.expect(t, "read", "ok - 0 0 0 0")
	a.expect(t, "renew pg1 1", "lost - 0")
	a.expect(t, "acquire pg2 0", "ok pg2 1")
	if !a.log.has("is gone: looking it up by name") {
		t.Errorf("not logged: %v", a.log.lines)
	}
}

func TestManagers(t *testing.T) {
	f := newFakeDocker(t)
	a := newTestArbiter(t, f.Sock)
	a.pollOnce(context.Background())
	a.expect(t, "read", "ok - 0 0 0 3")
	// asked again only every managersEvery
	f.set(func(f *fakeDocker) { f.managers = 5 })
	a.clock.advance(managersEvery - time.Millisecond)
	a.pollOnce(context.Background())
	a.expect(t, "read", "ok - 0 0 9999 3")
	a.clock.advance(time.Millisecond)
	a.pollOnce(context.Background())
	a.expect(t, "read", "ok - 0 1 10000 5")
	// unknown when they cannot be asked
	f.set(func(f *fakeDocker) { f.failStatus, f.failMsg = 503, "The swarm does not have a leader." })
	a.clock.advance(managersEvery)
	a.pollOnce(context.Background())
	if n := a.Managers(); n != 0 {
		t.Errorf("%d managers while the swarm has no leader", n)
	}
}

// talk sends raw on a new connection (closing its writing side after it when half is set) and
// returns everything the arbiter sends back until it closes the connection.
func talk(t *testing.T, addr, raw string, half bool) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	if half {
		_ = c.(*net.TCPConn).CloseWrite()
	}
	out, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("%q: %v (after %q)", raw, err, out)
	}
	return string(out)
}

func TestProtocolOverTCP(t *testing.T) {
	f := newFakeDocker(t)
	a := newTestArbiter(t, f.Sock)
	a.Timeout = 300 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(ln) }()
	addr := ln.Addr().String()
	for _, c := range []struct {
		raw  string
		half bool
		want string
	}{
		{"s3cret claim pg1\n", false, "ok pg1 1\n"},
		{"s3cret read\n", false, "ok pg1 1 0 0 0\n"},
		{"s3cret read\r\n", false, "ok pg1 1 0 0 0\n"},
		{"s3cret renew pg1 1\nsecond line ignored\n", false, "ok pg1 1\n"},
		{"wrong read\n", false, "denied\n"},
		{"s3cret acquire pg2\n", false, "bad args\n"},
		{"\n", false, "bad empty\n"},
		// a line without its newline may have been cut short: not acted on
		{"s3cret claim pg2", true, "bad unterminated\n"},
		{strings.Repeat("x", 2000) + "\n", false, "bad too_long\n"},
		// nothing sent: answered when the request's deadline passes
		{"", false, "bad timeout\n"},
	} {
		if got := talk(t, addr, c.raw, c.half); got != c.want {
			t.Errorf("%.40q: %q, want %q", c.raw, got, c.want)
		}
	}
	if l := f.lease(leaseName); l != (Lease{"pg1", 1, 2}) {
		t.Errorf("%+v", l)
	}
	// a slow client does not hold the others up
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = slow.Close() }()
	if got := talk(t, addr, "s3cret read\n", false); got != "ok pg1 1 0 0 0\n" {
		t.Errorf("beside a slow client: %q", got)
	}
	r := bufio.NewReader(slow)
	if line, _ := r.ReadString('\n'); line != "bad timeout\n" {
		t.Errorf("slow client: %q", line)
	}
	_ = ln.Close()
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

func TestSettings(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte("abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	s, err := loadSettings(env(map[string]string{"PGHA_LEASE_CONFIG": "x", "PGHA_TOKEN_FILE": tok}), os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	want := Settings{Config: "x", TTL: 10 * time.Second, Timeout: time.Second, Poll: 500 * time.Millisecond,
		Listen: ":7400", TokenFile: tok, Socket: "/var/run/docker.sock", Token: "abc"}
	if s != want {
		t.Errorf("defaults: %+v, want %+v", s, want)
	}
	s, err = loadSettings(env(map[string]string{"PGHA_LEASE_CONFIG": "x", "PGHA_TOKEN_FILE": tok, "PGHA_TTL_MS": "3000",
		"PGHA_CALL_TIMEOUT_MS": "250", "PGHA_POLL_MS": "100", "PGHA_LISTEN": "127.0.0.1:1",
		"DOCKER_HOST": "unix:///tmp/d.sock"}), os.ReadFile)
	if err != nil || s.TTL != 3*time.Second || s.Timeout != 250*time.Millisecond || s.Poll != 100*time.Millisecond ||
		s.Listen != "127.0.0.1:1" || s.Socket != "/tmp/d.sock" {
		t.Errorf("set: %+v %v", s, err)
	}
	for name, c := range map[string]struct {
		env   map[string]string
		token string
		want  string
	}{
		"no config":     {map[string]string{}, "abc", "PGHA_LEASE_CONFIG is not set"},
		"empty token":   {map[string]string{"PGHA_LEASE_CONFIG": "x"}, "\n", "is empty"},
		"spaced token":  {map[string]string{"PGHA_LEASE_CONFIG": "x"}, "a b\n", "whitespace"},
		"bad ttl":       {map[string]string{"PGHA_LEASE_CONFIG": "x", "PGHA_TTL_MS": "10s"}, "abc", "PGHA_TTL_MS"},
		"zero poll":     {map[string]string{"PGHA_LEASE_CONFIG": "x", "PGHA_POLL_MS": "0"}, "abc", "PGHA_POLL_MS"},
		"tcp docker":    {map[string]string{"PGHA_LEASE_CONFIG": "x", "DOCKER_HOST": "tcp://h:2375"}, "abc", "unix"},
		"missing token": {map[string]string{"PGHA_LEASE_CONFIG": "x", "PGHA_TOKEN_FILE": "/nonexistent"}, "", "cannot"},
	} {
		if err := os.WriteFile(tok, []byte(c.token), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, ok := c.env["PGHA_TOKEN_FILE"]; !ok {
			c.env["PGHA_TOKEN_FILE"] = tok
		}
		_, err := loadSettings(env(c.env), os.ReadFile)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", name, err, c.want)
		}
	}
}
