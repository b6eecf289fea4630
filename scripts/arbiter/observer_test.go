package main

// The observation clock, on a clock the test moves by hand.

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// logLines collects what would be logged.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logf(format string, args ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

func (l *logLines) has(sub string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.lines {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

const ttl = 10 * time.Second

func newObs() (*Observer, *fakeClock, *logLines) {
	c, l := newClock(), &logLines{}
	return NewObserver(c.now, ttl, l.logf), c, l
}

var held = Lease{"pg1", 3, 7}

func TestExpiryOnlyAfterAFullTTL(t *testing.T) {
	o, c, l := newObs()
	if v := o.Observed("cfg", 10, held); v.Expired || v.Age != 0 {
		t.Fatalf("first read: %+v", v)
	}
	c.advance(ttl - time.Millisecond)
	if v := o.Observed("cfg", 10, held); v.Expired || v.Age != ttl-time.Millisecond {
		t.Fatalf("1 ms before the TTL: %+v", v)
	}
	c.advance(time.Millisecond)
	if v := o.Observed("cfg", 10, held); !v.Expired || v.Age != ttl {
		t.Fatalf("at the TTL: %+v", v)
	}
	if !l.has("lease expired: holder pg1 term 3") {
		t.Errorf("the expiry is not logged: %v", l.lines)
	}
	// a renewal (new version): not expired any more, and a full TTL again from here
	c.advance(time.Second)
	if v := o.Observed("cfg", 11, Lease{"pg1", 3, 8}); v.Expired || v.Age != 0 {
		t.Fatalf("after a renewal: %+v", v)
	}
	if !l.has("lease no longer expired") {
		t.Errorf("the end of the expiry is not logged: %v", l.lines)
	}
	c.advance(ttl - time.Millisecond)
	if v := o.View(); v.Expired {
		t.Fatalf("1 ms before the TTL after the renewal: %+v", v)
	}
	c.advance(time.Millisecond)
	if v := o.View(); !v.Expired {
		t.Fatalf("a TTL after the renewal: %+v", v)
	}
}

func TestNothingExpiresBeforeTheFirstRead(t *testing.T) {
	o, c, _ := newObs()
	c.advance(time.Hour)
	if v := o.View(); v.Expired {
		t.Fatalf("without any read: %+v", v)
	}
	// the first read starts the observation: an arbiter that just started waits a full TTL,
	// however long it has been running without seeing the store
	if v := o.Observed("cfg", 10, held); v.Expired || v.Age != 0 {
		t.Fatalf("first read after an hour: %+v", v)
	}
	c.advance(ttl)
	if v := o.View(); !v.Expired {
		t.Fatalf("a TTL after the first read: %+v", v)
	}
}

func TestStartTimeCounts(t *testing.T) {
	// the start counts as a change: with no read, the age is measured from the start
	o, c, _ := newObs()
	c.advance(3 * time.Second)
	if v := o.View(); v.Age != 3*time.Second || v.Expired {
		t.Fatalf("%+v", v)
	}
}

func TestFailedReadResetsTheObservation(t *testing.T) {
	o, c, l := newObs()
	o.Observed("cfg", 10, held)
	c.advance(ttl + time.Second)
	if v := o.View(); !v.Expired {
		t.Fatalf("before the outage: %+v", v)
	}
	o.Failed("no_leader")
	if v := o.View(); v.Expired {
		t.Fatalf("while the store is unavailable nothing is expired: %+v", v)
	}
	if !l.has("store unavailable: no_leader") || !l.has("lease no longer expired") {
		t.Errorf("the outage is not logged: %v", l.lines)
	}
	c.advance(time.Minute)
	o.Failed("timeout") // logged once per outage
	// back, at the same version: what happened while it could not see is unknown, so a full TTL
	// from now, not from the last change it saw
	if v := o.Observed("cfg", 10, held); v.Expired || v.Age != 0 {
		t.Fatalf("first read after the outage: %+v", v)
	}
	if !l.has("store available again") {
		t.Errorf("the end of the outage is not logged: %v", l.lines)
	}
	c.advance(ttl - time.Millisecond)
	if v := o.Observed("cfg", 10, held); v.Expired {
		t.Fatalf("1 ms before a TTL after the outage: %+v", v)
	}
	c.advance(time.Millisecond)
	if v := o.Observed("cfg", 10, held); !v.Expired {
		t.Fatalf("a TTL after the outage: %+v", v)
	}
	n := 0
	for _, s := range l.lines {
		if strings.HasPrefix(s, "store unavailable") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d outage lines for one outage: %v", n, l.lines)
	}
}

func TestOwnWriteResetsTheObservation(t *testing.T) {
	o, c, l := newObs()
	o.Observed("cfg", 10, held)
	c.advance(ttl)
	if v := o.View(); !v.Expired {
		t.Fatalf("%+v", v)
	}
	o.Wrote("cfg", 10, Lease{"pg2", 4, 8})
	if v := o.View(); v.Expired || v.Age != 0 {
		t.Fatalf("right after its own write: %+v", v)
	}
	if !l.has("lease changed: holder pg2 term 4 (was holder pg1 term 3)") {
		t.Errorf("the change is not logged: %v", l.lines)
	}
	// the next read shows the write's version: a change once more (later, so on the safe side)
	c.advance(time.Second)
	if v := o.Observed("cfg", 11, Lease{"pg2", 4, 8}); v.Age != 0 {
		t.Fatalf("the write's version: %+v", v)
	}
	c.advance(ttl)
	if v := o.View(); !v.Expired {
		t.Fatalf("a TTL after: %+v", v)
	}
}

func TestSameVersionIsNoChange(t *testing.T) {
	o, c, _ := newObs()
	o.Observed("cfg", 10, held)
	for range 20 {
		c.advance(ttl / 20)
		o.Observed("cfg", 10, held)
	}
	if v := o.View(); !v.Expired || v.Age != ttl {
		t.Fatalf("%+v", v)
	}
}

func TestAnOvertakenReadIsIgnored(t *testing.T) {
	o, c, l := newObs()
	o.Observed("cfg", 10, held)
	c.advance(time.Second)
	o.Observed("cfg", 12, Lease{"pg2", 4, 9})
	c.advance(time.Second)
	// a slow read that started before the one above: it must not count as a change, nor make the
	// lease look as if it went back
	if v := o.Observed("cfg", 11, held); v.Age != time.Second {
		t.Fatalf("%+v", v)
	}
	if l.has("(was holder pg2 term 4)") {
		t.Errorf("an old version was taken for the current one: %v", l.lines)
	}
}

func TestAnotherObjectIsAChange(t *testing.T) {
	// the lease object deleted and made again: even at a lower version, it is a change
	o, c, l := newObs()
	o.Observed("cfg", 10, held)
	c.advance(ttl)
	if v := o.Observed("cfg2", 3, Lease{}); v.Expired || v.Age != 0 {
		t.Fatalf("%+v", v)
	}
	if !l.has("lease changed: holder - term 0") {
		t.Errorf("%v", l.lines)
	}
}
