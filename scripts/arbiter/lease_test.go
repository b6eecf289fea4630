package main

// The rule book (decide) and the protocol's parsing, with fabricated leases: no Docker, no clock.

import (
	"strings"
	"testing"
	"time"
)

var testToken = tokenHash("s3cret")

func req(t *testing.T, line string) Request {
	t.Helper()
	r, bad := parseRequest("s3cret "+line, testToken)
	if bad != "" {
		t.Fatalf("parseRequest(%q): %s", line, bad)
	}
	return r
}

// check runs decide and compares both its results: want is nil for "nothing written".
func check(t *testing.T, line string, cur Lease, v View, want *Lease, wantResp string) {
	t.Helper()
	next, resp := decide(req(t, line), cur, v)
	if resp != wantResp {
		t.Errorf("%s on %+v (expired %v): answer %q, want %q", line, cur, v.Expired, resp, wantResp)
	}
	switch {
	case want == nil && next != nil:
		t.Errorf("%s on %+v: writes %+v, want no write", line, cur, *next)
	case want != nil && next == nil:
		t.Errorf("%s on %+v: writes nothing, want %+v", line, cur, *want)
	case want != nil && *next != *want:
		t.Errorf("%s on %+v: writes %+v, want %+v", line, cur, *next, *want)
	}
}

var (
	live    = View{Expired: false, Age: 1500 * time.Millisecond, Managers: 3}
	expired = View{Expired: true, Age: 12 * time.Second, Managers: 3}
)

func TestRead(t *testing.T) {
	check(t, "read", Lease{"pg1", 4, 9}, live, nil, "ok pg1 4 0 1500 3")
	check(t, "read", Lease{"", 0, 0}, expired, nil, "ok - 0 1 12000 3")
	check(t, "read", Lease{"pg2", 7, 1}, View{}, nil, "ok pg2 7 0 0 0")
}

func TestRenew(t *testing.T) {
	// the holder renews: same holder and term, seq+1 (observers see the renewal as a change)
	check(t, "renew pg1 4", Lease{"pg1", 4, 9}, live, &Lease{"pg1", 4, 10}, "ok pg1 4")
	// expired but nobody took it: the holder still holds it
	check(t, "renew pg1 4", Lease{"pg1", 4, 9}, expired, &Lease{"pg1", 4, 10}, "ok pg1 4")
	// someone else holds it, or a newer term: the caller must fence
	check(t, "renew pg2 4", Lease{"pg1", 4, 9}, live, nil, "lost pg1 4")
	check(t, "renew pg1 3", Lease{"pg1", 4, 9}, live, nil, "lost pg1 4")
	check(t, "renew pg1 5", Lease{"pg1", 4, 9}, live, nil, "lost pg1 4")
	check(t, "renew pg1 4", Lease{"", 4, 9}, live, nil, "lost - 4")
}

func TestAcquire(t *testing.T) {
	// refused while another server holds it and it has not expired
	check(t, "acquire pg2 4", Lease{"pg1", 4, 9}, live, nil, "refused pg1 4 held")
	// allowed once it has expired on this arbiter's clock: a new term
	check(t, "acquire pg2 4", Lease{"pg1", 4, 9}, expired, &Lease{"pg2", 5, 10}, "ok pg2 5")
	// allowed when released (term above 0, nobody): at once
	check(t, "acquire pg2 4", Lease{"", 4, 9}, live, &Lease{"pg2", 5, 10}, "ok pg2 5")
	// its own lease: a renewal, the term stays
	check(t, "acquire pg1 4", Lease{"pg1", 4, 9}, live, &Lease{"pg1", 4, 10}, "ok pg1 4")
	check(t, "acquire pg1 4", Lease{"pg1", 4, 9}, expired, &Lease{"pg1", 4, 10}, "ok pg1 4")
	// a stale (or future) seen term is refused, expired or not, own or not
	check(t, "acquire pg2 3", Lease{"pg1", 4, 9}, expired, nil, "refused pg1 4 term")
	check(t, "acquire pg2 5", Lease{"pg1", 4, 9}, expired, nil, "refused pg1 4 term")
	check(t, "acquire pg2 3", Lease{"", 4, 9}, live, nil, "refused - 4 term")
	check(t, "acquire pg1 3", Lease{"pg1", 4, 9}, live, nil, "refused pg1 4 term")
	// a lease object just made (term 0, nobody): free at once
	check(t, "acquire pg1 0", Lease{"", 0, 0}, live, &Lease{"pg1", 1, 1}, "ok pg1 1")
	check(t, "acquire pg1 0", Lease{"", 0, 0}, expired, &Lease{"pg1", 1, 1}, "ok pg1 1")
}

func TestRelease(t *testing.T) {
	check(t, "release pg1 4", Lease{"pg1", 4, 9}, live, &Lease{"", 4, 10}, "ok - 4")
	check(t, "release pg2 4", Lease{"pg1", 4, 9}, live, nil, "lost pg1 4")
	check(t, "release pg1 3", Lease{"pg1", 4, 9}, live, nil, "lost pg1 4")
	// released already (a retry whose answer was lost): the caller holds nothing, it must fence
	check(t, "release pg1 4", Lease{"", 4, 10}, live, nil, "lost - 4")
}

func TestHandover(t *testing.T) {
	check(t, "handover pg1 4 pg2", Lease{"pg1", 4, 9}, live, &Lease{"pg2", 5, 10}, "ok pg2 5")
	check(t, "handover pg1 4 pg2", Lease{"pg1", 4, 9}, expired, &Lease{"pg2", 5, 10}, "ok pg2 5")
	check(t, "handover pg1 3 pg2", Lease{"pg1", 4, 9}, live, nil, "lost pg1 4")
	check(t, "handover pg3 4 pg2", Lease{"pg1", 4, 9}, live, nil, "lost pg1 4")
	check(t, "handover pg1 4 pg2", Lease{"", 4, 9}, live, nil, "lost - 4")
}

func TestClaim(t *testing.T) {
	// unconditional: whoever holds it, expired or not, always a new term
	check(t, "claim pg2", Lease{"pg1", 4, 9}, live, &Lease{"pg2", 5, 10}, "ok pg2 5")
	check(t, "claim pg1", Lease{"pg1", 4, 9}, live, &Lease{"pg1", 5, 10}, "ok pg1 5")
	check(t, "claim pg1", Lease{"", 0, 0}, live, &Lease{"pg1", 1, 1}, "ok pg1 1")
}

func TestParseRequest(t *testing.T) {
	for line, want := range map[string]string{
		"":                              "bad empty",
		"   ":                           "bad empty",
		"wrong read":                    "denied",
		"S3cret read":                   "denied",
		"s3cret2 read":                  "denied",
		"s3cre read":                    "denied",
		"wrong":                         "denied",
		"wrong nonsense":                "denied", // the verb is not even looked at
		"s3cret":                        "bad verb",
		"s3cret READ":                   "bad verb",
		"s3cret fence pg1":              "bad verb",
		"s3cret read now":               "bad args",
		"s3cret renew pg1":              "bad args",
		"s3cret renew pg1 4 5":          "bad args",
		"s3cret handover pg1 4":         "bad args",
		"s3cret claim":                  "bad args",
		"s3cret renew PG1 4":            "bad server",
		"s3cret renew pg-1 4":           "bad server",
		"s3cret renew - 4":              "bad server",
		"s3cret claim " + long(64):      "bad server",
		"s3cret renew pg1 -1":           "bad term",
		"s3cret renew pg1 +1":           "bad term",
		"s3cret renew pg1 0x10":         "bad term",
		"s3cret renew pg1 1.0":          "bad term",
		"s3cret renew pg1 ":             "bad args",
		"s3cret acquire pg1 " + n(19):   "bad term",
		"s3cret handover pg1 4 Pg2":     "bad server",
		"s3cret handover pg1 x pg2":     "bad term",
		"s3cret handover pg1 4 pg2 pg3": "bad args",
	} {
		if _, got := parseRequest(line, testToken); got != want {
			t.Errorf("parseRequest(%q) = %q, want %q", line, got, want)
		}
	}
	for line, want := range map[string]Request{
		"s3cret read":                    {Verb: "read"},
		"s3cret renew pg1 4":             {Verb: "renew", Server: "pg1", Term: 4},
		"s3cret  acquire\tpg_2   007":    {Verb: "acquire", Server: "pg_2", Term: 7},
		"s3cret release pg1 0":           {Verb: "release", Server: "pg1"},
		"s3cret handover pg1 4 pg2":      {Verb: "handover", Server: "pg1", Term: 4, To: "pg2"},
		"s3cret claim " + long(63):       {Verb: "claim", Server: long(63)},
		"s3cret acquire pg1 " + n(18):    {Verb: "acquire", Server: "pg1", Term: 999999999999999999},
		"s3cret handover a 1 " + long(1): {Verb: "handover", Server: "a", Term: 1, To: "a"},
	} {
		got, bad := parseRequest(line, testToken)
		if bad != "" || got != want {
			t.Errorf("parseRequest(%q) = %+v %q, want %+v", line, got, bad, want)
		}
	}
}

func long(k int) string { return strings.Repeat("a", k) }
func n(k int) string    { return strings.Repeat("9", k) }

func TestLabels(t *testing.T) {
	l, err := leaseFromLabels(initialLabels())
	if err != nil || l != (Lease{}) {
		t.Fatalf("initial labels: %+v %v", l, err)
	}
	if initialLabels()[labelMark] != "1" {
		t.Errorf("initial labels lack %s=1: %v", labelMark, initialLabels())
	}
	other := map[string]string{"keep": "me", labelMark: "1", labelHolder: "x"}
	got := withLease(other, Lease{"pg2", 12, 40})
	want := map[string]string{"keep": "me", labelMark: "1", labelHolder: "pg2", labelTerm: "12", labelSeq: "40"}
	if len(got) != len(want) {
		t.Errorf("withLease: %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("withLease: %s=%q, want %q", k, got[k], v)
		}
	}
	if other[labelHolder] != "x" {
		t.Errorf("withLease changed its argument: %v", other)
	}
	back, err := leaseFromLabels(got)
	if err != nil || back != (Lease{"pg2", 12, 40}) {
		t.Errorf("round trip: %+v %v", back, err)
	}
	// a lease nobody can read is an error, never "held by nobody"
	for _, bad := range []map[string]string{
		nil,
		{labelTerm: "1", labelSeq: "1"},
		{labelHolder: "pg1", labelSeq: "1"},
		{labelHolder: "pg1", labelTerm: "1"},
		{labelHolder: "pg1", labelTerm: "one", labelSeq: "1"},
		{labelHolder: "pg1", labelTerm: "1", labelSeq: "-1"},
		{labelHolder: "PG1", labelTerm: "1", labelSeq: "1"},
		{labelHolder: "pg1 pg2", labelTerm: "1", labelSeq: "1"},
	} {
		if l, err := leaseFromLabels(bad); err == nil {
			t.Errorf("leaseFromLabels(%v) = %+v, want an error", bad, l)
		}
	}
}
