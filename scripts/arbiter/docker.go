package main

// The Docker Engine API, over the engine's unix socket: just the calls the lease needs. The lease
// object is a swarm config; swarmkit keeps a version (a raft index) on every object and refuses an
// update that names any other version than the current one ("update out of sequence"), which makes
// POST /configs/{id}/update?version=N a compare-and-swap. Only a config's labels may change.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The API version is the engine's own (GET /_ping says it in its Api-Version header), up to
// maxAPIMinor: an engine accepts only versions between its minimum and its maximum, and both move
// (Docker 20.10, the lab's, stops at 1.41; newer engines drop old versions), while every call made
// here has stayed the same from 1.30 (configs can be updated from there) to 1.50.
const (
	minAPIMinor = 30
	maxAPIMinor = 50
)

// errOutOfSequence: the update named a version that is not the current one — a lost race. Docker
// 20.10 answers HTTP 500 {"message":"rpc error: code = Unknown desc = update out of sequence"}.
var errOutOfSequence = errors.New("update out of sequence")

// errNotFound: the object does not exist (any more).
var errNotFound = errors.New("not found")

// apiError is an answer of the engine other than success, with the message it gave.
type apiError struct {
	Status  int
	Message string
}

func (e *apiError) Error() string { return fmt.Sprintf("docker API %d: %s", e.Status, e.Message) }

// unavailableError is a failure of the store; Reason is one word for the protocol's answer.
type unavailableError struct {
	Reason string
	Err    error
}

func (e *unavailableError) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *unavailableError) Unwrap() error { return e.Err }

// reasonOf names a failure in one word (no spaces), for "unavailable <reason>".
func reasonOf(err error) string {
	var u *unavailableError
	if errors.As(err, &u) {
		return u.Reason
	}
	var a *apiError
	switch {
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.As(err, &a):
		m := strings.ToLower(a.Message)
		switch {
		case strings.Contains(m, "does not have a leader"):
			return "no_leader"
		case strings.Contains(m, "not a swarm manager"):
			return "not_manager"
		case strings.Contains(m, "deadline exceeded"):
			return "timeout"
		}
		return "docker_" + strconv.Itoa(a.Status) + ":" + oneWord(a.Message, 60)
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return "docker_unreachable"
	}
	return oneWord(err.Error(), 60)
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// oneWord makes s one word of at most n bytes of printable ASCII: whitespace runs become "_",
// other characters outside printable ASCII "?" (the answer is one line of a plain-text protocol).
func oneWord(s string, n int) string {
	var b strings.Builder
	space := false
	for _, r := range strings.TrimSpace(s) {
		switch {
		case r == ' ' || r == '\t' || r == '\n' || r == '\r':
			space = true
			continue
		case r < 0x21 || r > 0x7e:
			r = '?'
		}
		if space {
			b.WriteByte('_')
			space = false
		}
		b.WriteRune(r)
	}
	out := b.String()
	if len(out) > n {
		out = out[:n]
	}
	if out == "" {
		return "unknown"
	}
	return out
}

// Docker is a client of one engine's API over its unix socket. Every call has its own deadline
// (timeout) on top of the caller's context.
type Docker struct {
	http    *http.Client
	timeout time.Duration
	logf    func(string, ...any)

	mu  sync.Mutex
	api string // "v1.41": the version path prefix agreed with the engine ("" until then)
}

// NewDocker talks to the engine listening on the unix socket at path.
func NewDocker(path string, timeout time.Duration, logf func(string, ...any)) *Docker {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		MaxIdleConns:       4,
		IdleConnTimeout:    30 * time.Second,
		DisableCompression: true,
	}
	return &Docker{http: &http.Client{Transport: tr}, timeout: timeout, logf: logf}
}

// version is the API version to call the engine with, asked the first time it is needed and again
// after the engine refused it (it may have been replaced by another version meanwhile).
func (d *Docker) version(ctx context.Context) (string, error) {
	d.mu.Lock()
	v := d.api
	d.mu.Unlock()
	if v != "" {
		return v, nil
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/_ping", nil)
	if err != nil {
		return "", err
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return "", err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", &apiError{Status: resp.StatusCode, Message: "GET /_ping: " + resp.Status}
	}
	got := resp.Header.Get("Api-Version")
	minor, err := strconv.Atoi(strings.TrimPrefix(got, "1."))
	if !strings.HasPrefix(got, "1.") || err != nil || minor < 0 {
		return "", &unavailableError{Reason: "docker_api_unknown", Err: fmt.Errorf("GET /_ping: Api-Version %q", got)}
	}
	if minor < minAPIMinor {
		return "", &unavailableError{Reason: "docker_api_too_old",
			Err: fmt.Errorf("the engine speaks API %s, configs need 1.%d", got, minAPIMinor)}
	}
	v = fmt.Sprintf("v1.%d", min(minor, maxAPIMinor))
	d.mu.Lock()
	d.api = v
	d.mu.Unlock()
	if d.logf != nil {
		d.logf("docker engine %s speaks API %s: using %s", or(resp.Header.Get("Server"), "(unnamed)"), got, v)
	}
	return v, nil
}

// call makes one API call: body (when not nil) is sent as JSON, a 2xx answer's body is decoded
// into out (when not nil). Anything else is an *apiError, or the transport's error.
func (d *Docker) call(ctx context.Context, method, path string, query url.Values, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	api, err := d.version(ctx)
	if err != nil {
		return err
	}
	u := "http://docker/" + api + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var m struct{ Message string }
		if json.Unmarshal(data, &m) != nil || m.Message == "" {
			m.Message = strings.TrimSpace(string(data))
		}
		if resp.StatusCode == http.StatusBadRequest && strings.Contains(m.Message, "client version") {
			// "client version 1.41 is too old. Minimum supported API version is 1.44": the
			// engine was replaced by another version; agree on the version again next time
			d.mu.Lock()
			d.api = ""
			d.mu.Unlock()
		}
		return &apiError{Status: resp.StatusCode, Message: m.Message}
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: undecodable answer: %w", method, path, err)
		}
	}
	return nil
}

// Config is a swarm config object as GET /configs/{id} gives it. Spec is kept as raw JSON fields
// so that an update sends back exactly what was read (Data, Templating, whatever a newer engine
// adds) with only the labels replaced.
type Config struct {
	ID      string
	Version uint64
	Name    string
	Labels  map[string]string
	spec    map[string]json.RawMessage
}

type wireConfig struct {
	ID      string
	Version struct{ Index uint64 }
	Spec    map[string]json.RawMessage
}

func (w wireConfig) config() (*Config, error) {
	c := &Config{ID: w.ID, Version: w.Version.Index, spec: w.Spec}
	if raw, ok := w.Spec["Name"]; ok {
		if err := json.Unmarshal(raw, &c.Name); err != nil {
			return nil, fmt.Errorf("config %s: Spec.Name: %w", w.ID, err)
		}
	}
	if raw, ok := w.Spec["Labels"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &c.Labels); err != nil {
			return nil, fmt.Errorf("config %s: Spec.Labels: %w", w.ID, err)
		}
	}
	return c, nil
}

// GetConfig reads one config by ID.
func (d *Docker) GetConfig(ctx context.Context, id string) (*Config, error) {
	var w wireConfig
	err := d.call(ctx, http.MethodGet, "/configs/"+url.PathEscape(id), nil, nil, &w)
	var a *apiError
	if errors.As(err, &a) && a.Status == http.StatusNotFound {
		return nil, errNotFound
	}
	if err != nil {
		return nil, err
	}
	return w.config()
}

// FindConfig finds the config named exactly name (the engine's name filter also matches the names
// that begin with it: "pgha_net-lease" finds "pgha_net-lease-old" too); errNotFound when there is
// none.
func (d *Docker) FindConfig(ctx context.Context, name string) (*Config, error) {
	f, _ := json.Marshal(map[string][]string{"name": {name}})
	var ws []wireConfig
	if err := d.call(ctx, http.MethodGet, "/configs", url.Values{"filters": {string(f)}}, nil, &ws); err != nil {
		return nil, err
	}
	for _, w := range ws {
		c, err := w.config()
		if err != nil {
			return nil, err
		}
		if c.Name == name {
			return c, nil
		}
	}
	return nil, errNotFound
}

// errConflict: a config of that name exists already.
var errConflict = errors.New("name in use")

// CreateConfig makes a config; its ID.
func (d *Docker) CreateConfig(ctx context.Context, name string, data []byte, labels map[string]string) (string, error) {
	body := map[string]any{"Name": name, "Labels": labels, "Data": base64.StdEncoding.EncodeToString(data)}
	var out struct{ ID string }
	err := d.call(ctx, http.MethodPost, "/configs/create", nil, body, &out)
	var a *apiError
	if errors.As(err, &a) && a.Status == http.StatusConflict {
		return "", errConflict
	}
	if err != nil {
		return "", err
	}
	if out.ID == "" {
		return "", errors.New("POST /configs/create: no ID in the answer")
	}
	return out.ID, nil
}

// UpdateLabels replaces c's labels, if c is still at c.Version: errOutOfSequence when it is not.
func (d *Docker) UpdateLabels(ctx context.Context, c *Config, labels map[string]string) error {
	spec := make(map[string]json.RawMessage, len(c.spec)+1)
	for k, v := range c.spec {
		spec[k] = v
	}
	raw, err := json.Marshal(labels)
	if err != nil {
		return err
	}
	spec["Labels"] = raw
	q := url.Values{"version": {strconv.FormatUint(c.Version, 10)}}
	err = d.call(ctx, http.MethodPost, "/configs/"+url.PathEscape(c.ID)+"/update", q, spec, nil)
	var a *apiError
	if errors.As(err, &a) {
		switch {
		case strings.Contains(a.Message, "out of sequence"):
			return errOutOfSequence
		case a.Status == http.StatusNotFound:
			return errNotFound
		}
	}
	return err
}

// Managers counts the swarm's manager nodes.
func (d *Docker) Managers(ctx context.Context) (int, error) {
	var nodes []struct{ Spec struct{ Role string } }
	if err := d.call(ctx, http.MethodGet, "/nodes", nil, nil, &nodes); err != nil {
		return 0, err
	}
	n := 0
	for _, x := range nodes {
		if x.Spec.Role == "manager" {
			n++
		}
	}
	return n, nil
}

// Store is the lease object named Name, found (or made) on first use and remembered by ID.
type Store struct {
	Docker *Docker
	Name   string
	logf   func(string, ...any)

	mu sync.Mutex
	id string
}

// Read reads the lease object at its current version, making it if there is none.
func (s *Store) Read(ctx context.Context) (*Config, Lease, error) {
	c, err := s.read(ctx)
	if err != nil {
		return nil, Lease{}, err
	}
	l, err := leaseFromLabels(c.Labels)
	if err != nil {
		return nil, Lease{}, &unavailableError{Reason: "bad_lease_labels", Err: err}
	}
	return c, l, nil
}

func (s *Store) read(ctx context.Context) (*Config, error) {
	s.mu.Lock()
	id := s.id
	s.mu.Unlock()
	if id != "" {
		c, err := s.Docker.GetConfig(ctx, id)
		if err == nil && c.Name == s.Name {
			return c, nil
		}
		if err != nil && !errors.Is(err, errNotFound) {
			return nil, err
		}
		s.logf("lease config %s (%s) is gone: looking it up by name", s.Name, id)
		s.setID("")
	}
	c, err := s.Docker.FindConfig(ctx, s.Name)
	if errors.Is(err, errNotFound) {
		var cid string
		cid, err = s.Docker.CreateConfig(ctx, s.Name, []byte(leaseNote), initialLabels())
		switch {
		case err == nil:
			s.logf("created lease config %s (%s): holder -, term 0", s.Name, cid)
			c, err = s.Docker.GetConfig(ctx, cid)
		case errors.Is(err, errConflict):
			// another arbiter made it at the same moment: use that one
			c, err = s.Docker.FindConfig(ctx, s.Name)
		}
	}
	if errors.Is(err, errNotFound) {
		return nil, &unavailableError{Reason: "lease_config_missing", Err: err}
	}
	if err != nil {
		return nil, err
	}
	s.setID(c.ID)
	return c, nil
}

func (s *Store) setID(id string) {
	s.mu.Lock()
	s.id = id
	s.mu.Unlock()
}

// Write replaces the lease in c (read by Read) with l: errOutOfSequence when c changed since.
func (s *Store) Write(ctx context.Context, c *Config, l Lease) error {
	err := s.Docker.UpdateLabels(ctx, c, withLease(c.Labels, l))
	if errors.Is(err, errNotFound) {
		// deleted between the read and the write: the next read looks it up again
		s.setID("")
		return &unavailableError{Reason: "lease_config_missing", Err: err}
	}
	return err
}
