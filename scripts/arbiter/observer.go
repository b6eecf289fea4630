package main

// The observation clock: when this arbiter may say that the lease has expired.
//
// Expiry is never computed from a time written by someone else: clocks of other machines say
// nothing here. The arbiter only trusts its own monotonic clock (Go's time.Now() carries a
// monotonic reading, and Time.Sub uses it) and what it has seen itself: the lease has expired when
// this arbiter has watched the same version of the lease object for a full TTL without a gap.
// Any doubt moves lastChange forward, never back, so every mistake errs on the side of "not
// expired yet" (a slower failover) rather than "expired" (two primaries).

import (
	"sync"
	"time"
)

// Observer holds what this arbiter has seen of the lease object. Safe for concurrent use: the
// poller and the request handlers all report what they read.
type Observer struct {
	now  func() time.Time
	ttl  time.Duration
	logf func(format string, args ...any)

	mu         sync.Mutex
	id         string    // the object last seen ("" before the first read)
	version    uint64    // its version (Version.Index)
	lastChange time.Time // see Observed
	readOK     bool      // the last read succeeded (false before the first one)
	lease      Lease     // the lease at that version
	expired    bool      // the last expiry reported, to log its transitions
	outage     string    // why the store is unavailable, to log its transitions ("" when it is not)
}

// NewObserver starts the observation at now(): nothing is expired before a TTL from here.
func NewObserver(now func() time.Time, ttl time.Duration, logf func(string, ...any)) *Observer {
	return &Observer{now: now, ttl: ttl, logf: logf, lastChange: now()}
}

// Observed records a successful read of object id at version (holding lease l) and says what the
// arbiter now knows. lastChange becomes now when
//   - this is the first successful read since the start or since a failed one: while the arbiter
//     could not see the store, the holder may have renewed (or anything else happened) unseen;
//   - the object is another one (deleted and made again) or at a newer version: it changed.
//
// A read that reports an older version of the same object than one seen already was overtaken by
// a newer read (they run concurrently): it tells nothing new and is ignored.
func (o *Observer) Observed(id string, version uint64, l Lease) View {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.now()
	switch {
	case !o.readOK:
		o.lastChange = now
		again := ""
		if o.outage != "" {
			again = " again"
		}
		o.logf("store available%s (%s at version %d): the lease may only expire a full TTL from now", again, l.text(),
			version)
		o.outage = ""
		o.readOK = true
		o.note(id, version, l, "read at version")
	case id != o.id || version > o.version:
		o.lastChange = now
		o.note(id, version, l, "read at version")
	}
	return o.view(now)
}

// note takes id, version and l as the current ones, logging a change of holder or term; how says
// where the change was seen.
func (o *Observer) note(id string, version uint64, l Lease, how string) {
	if o.id != "" && (l.Holder != o.lease.Holder || l.Term != o.lease.Term) {
		o.logf("lease changed: %s (was %s) %s %d", l.text(), o.lease.text(), how, version)
	} else if o.id != "" && id != o.id {
		o.logf("lease object replaced: now %s, %s %s %d", id, l.text(), how, version)
	}
	o.id, o.version, o.lease = id, version, l
}

// Wrote records this arbiter's own successful write of l over version of object id. The write's
// new version is not known (Docker's update answers with nothing), so the next read shows a newer
// version and moves lastChange once more: a little later, which is on the safe side.
func (o *Observer) Wrote(id string, version uint64, l Lease) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.lastChange = o.now()
	if id == o.id && version >= o.version {
		o.note(id, version, l, "written by this arbiter over version")
	}
	o.view(o.now())
}

// Failed records a failed read or write: the observation starts again with the next successful
// read (see Observed). A failed write counts too: it may have happened all the same.
func (o *Observer) Failed(reason string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.readOK = false
	if o.outage == "" {
		o.logf("store unavailable: %s (nothing expires until a full TTL after it is back)", reason)
		o.outage = reason
	}
	o.view(o.now())
}

// View is what the arbiter can say now, without reading.
func (o *Observer) View() View {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.view(o.now())
}

// view computes the expiry at now and logs when it changes. Called with mu held.
func (o *Observer) view(now time.Time) View {
	age := now.Sub(o.lastChange)
	expired := o.readOK && age >= o.ttl
	if expired != o.expired {
		if expired {
			o.logf("lease expired: %s unchanged for %d ms (TTL %d ms)", o.lease.text(), age.Milliseconds(),
				o.ttl.Milliseconds())
		} else {
			o.logf("lease no longer expired: %s", o.lease.text())
		}
		o.expired = expired
	}
	return View{Expired: expired, Age: age}
}
