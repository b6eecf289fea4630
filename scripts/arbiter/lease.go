package main

// The lease, the protocol's requests and the decisions over them: pure functions, no Docker, no
// clock, no network. Everything that can hand the lease to the wrong server is decided here, so
// that lease_test.go can go through every case with fabricated states.

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"
)

// The lease lives in these labels of the config object; the object's data is a fixed note.
const (
	labelHolder = "pgha.lease.holder"
	labelTerm   = "pgha.lease.term"
	labelSeq    = "pgha.lease.seq"
	labelMark   = "pgha.lease"
	leaseNote   = "pgha lease: labels hold the holder and term; managed by pgha-arbiter\n"
)

// Lease is one state of the lease. Seq changes on every write the arbiter makes (a renewal too), so
// that every observer sees a renewal as a change even though holder and term stay the same.
type Lease struct {
	Holder string // "" when nobody holds it
	Term   uint64
	Seq    uint64
}

// holderWord is the holder as the protocol prints it: one word, "-" for nobody.
func (l Lease) holderWord() string {
	if l.Holder == "" {
		return "-"
	}
	return l.Holder
}

// text is the lease for the log (Seq left out: it changes on every renewal).
func (l Lease) text() string { return fmt.Sprintf("holder %s term %d", l.holderWord(), l.Term) }

// leaseFromLabels reads the lease out of the config object's labels. Anything unexpected is an
// error and never a default: a lease nobody can read must not be taken as "held by nobody".
func leaseFromLabels(labels map[string]string) (Lease, error) {
	holder, ok := labels[labelHolder]
	if !ok {
		return Lease{}, errors.New("label " + labelHolder + " is missing")
	}
	if holder != "" && !validServer(holder) {
		return Lease{}, fmt.Errorf("label %s is not a server name: %q", labelHolder, holder)
	}
	term, err := labelNumber(labels, labelTerm)
	if err != nil {
		return Lease{}, err
	}
	seq, err := labelNumber(labels, labelSeq)
	if err != nil {
		return Lease{}, err
	}
	return Lease{Holder: holder, Term: term, Seq: seq}, nil
}

func labelNumber(labels map[string]string, key string) (uint64, error) {
	v, ok := labels[key]
	if !ok {
		return 0, errors.New("label " + key + " is missing")
	}
	n, ok := parseTerm(v)
	if !ok {
		return 0, fmt.Errorf("label %s is not a decimal number: %q", key, v)
	}
	return n, nil
}

// withLease returns a copy of labels with the lease in it; the other labels stay as they are (the
// update sends the whole spec back, and only the lease's labels may differ).
func withLease(labels map[string]string, l Lease) map[string]string {
	out := maps.Clone(labels)
	if out == nil {
		out = map[string]string{}
	}
	out[labelHolder] = l.Holder
	out[labelTerm] = strconv.FormatUint(l.Term, 10)
	out[labelSeq] = strconv.FormatUint(l.Seq, 10)
	return out
}

// initialLabels are those of a lease object the arbiter creates: held by nobody, term 0.
func initialLabels() map[string]string {
	return withLease(map[string]string{labelMark: "1"}, Lease{})
}

// validServer: a server name as pgha's services are named, [a-z0-9_]{1,63}.
func validServer(s string) bool {
	if len(s) < 1 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// parseTerm: decimal digits only (no sign, no spaces), at most 18 of them, so that term+1 and
// seq+1 can never overflow.
func parseTerm(s string) (uint64, bool) {
	if len(s) < 1 || len(s) > 18 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// Request is one parsed request line. Server is the server the verb is about (for handover: the
// one handing over), Term the term the caller knows, To the server a handover goes to.
type Request struct {
	Verb   string
	Server string
	Term   uint64
	To     string
}

// verbArgs: the arguments each verb takes, as the protocol spells them ("s" a server, "t" a term).
var verbArgs = map[string]string{
	"read":     "",
	"renew":    "st",
	"acquire":  "st",
	"release":  "st",
	"handover": "sts",
	"claim":    "s",
}

// tokenHash keeps the token only as its SHA-256, so that comparing two of them takes the same
// time whatever the token's length and wherever the first difference is.
func tokenHash(token string) [32]byte { return sha256.Sum256([]byte(token)) }

// parseRequest parses one request line (without its newline). On failure the second result is the
// whole response: "denied" for a wrong token (checked before anything else is looked at, so that a
// caller without the token learns nothing about the rest of its line) or "bad <what>".
func parseRequest(line string, token [32]byte) (Request, string) {
	f := strings.Fields(line)
	if len(f) == 0 {
		return Request{}, "bad empty"
	}
	got := tokenHash(f[0])
	if subtle.ConstantTimeCompare(got[:], token[:]) != 1 {
		return Request{}, "denied"
	}
	if len(f) < 2 {
		return Request{}, "bad verb"
	}
	r := Request{Verb: f[1]}
	spec, ok := verbArgs[r.Verb]
	if !ok {
		return Request{}, "bad verb"
	}
	args := f[2:]
	if len(args) != len(spec) {
		return Request{}, "bad args"
	}
	for i, a := range args {
		switch {
		case spec[i] == 't':
			n, ok := parseTerm(a)
			if !ok {
				return Request{}, "bad term"
			}
			r.Term = n
		case !validServer(a):
			return Request{}, "bad server"
		case i == 0:
			r.Server = a
		default:
			r.To = a
		}
	}
	return r, ""
}

// View is what the arbiter knows besides the lease itself: whether the lease has expired on its
// own clock (Observer), how long since it last changed, and how many managers the swarm has.
type View struct {
	Expired  bool
	Age      time.Duration
	Managers int
}

// decide is the lease's whole rule book. Given a request, the lease as just read and the view, it
// returns the lease to write (nil: nothing to write) and the response to give once that write has
// succeeded (or at once when there is nothing to write). Every write increments Seq.
func decide(r Request, cur Lease, v View) (*Lease, string) {
	write := func(holder string, term uint64) *Lease {
		return &Lease{Holder: holder, Term: term, Seq: cur.Seq + 1}
	}
	lost := fmt.Sprintf("lost %s %d", cur.holderWord(), cur.Term)
	refused := func(why string) string { return fmt.Sprintf("refused %s %d %s", cur.holderWord(), cur.Term, why) }
	switch r.Verb {
	case "read":
		return nil, fmt.Sprintf("ok %s %d %s %d %d", cur.holderWord(), cur.Term, bit(v.Expired), v.Age.Milliseconds(),
			v.Managers)
	case "renew":
		if cur.Holder != r.Server || cur.Term != r.Term {
			return nil, lost
		}
		return write(cur.Holder, cur.Term), fmt.Sprintf("ok %s %d", r.Server, cur.Term)
	case "acquire":
		switch {
		case cur.Term != r.Term:
			// the caller decided on a state that is no longer the lease's: it must read again
			return nil, refused("term")
		case cur.Holder == r.Server:
			// it holds the lease already (a retry whose answer was lost): a renewal, same term
			return write(cur.Holder, cur.Term), fmt.Sprintf("ok %s %d", r.Server, cur.Term)
		case cur.Holder == "" || v.Expired:
			// free (released, or a lease object just made), or nobody renewed it for a full TTL
			// as this arbiter saw it: the next term. (A lease object deleted under a holder and
			// made again is free at once too, at term 0: the old holder learns it at its next
			// renewal, "lost - 0". Delete it only when no server holds it.)
			return write(r.Server, cur.Term+1), fmt.Sprintf("ok %s %d", r.Server, cur.Term+1)
		default:
			return nil, refused("held")
		}
	case "release":
		if cur.Holder != r.Server || cur.Term != r.Term {
			return nil, lost
		}
		return write("", cur.Term), fmt.Sprintf("ok - %d", cur.Term)
	case "handover":
		if cur.Holder != r.Server || cur.Term != r.Term {
			return nil, lost
		}
		return write(r.To, cur.Term+1), fmt.Sprintf("ok %s %d", r.To, cur.Term+1)
	case "claim":
		return write(r.Server, cur.Term+1), fmt.Sprintf("ok %s %d", r.Server, cur.Term+1)
	}
	return nil, "bad verb"
}

func bit(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// logged: the verbs whose outcome goes to the log (renewals and reads happen all the time).
func logged(verb string) bool {
	return verb == "acquire" || verb == "handover" || verb == "claim" || verb == "release"
}

// describe names a request for the log.
func (r Request) describe() string {
	switch r.Verb {
	case "handover":
		return fmt.Sprintf("handover %s term %d to %s", r.Server, r.Term, r.To)
	case "claim":
		return "claim " + r.Server
	case "acquire":
		return fmt.Sprintf("acquire %s seen term %d", r.Server, r.Term)
	}
	return fmt.Sprintf("%s %s term %d", r.Verb, r.Server, r.Term)
}
