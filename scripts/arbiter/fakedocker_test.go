package main

// A fake Docker Engine API on a unix socket in a temporary directory: the configs and nodes calls
// the arbiter makes, with swarmkit's version check, and hooks to fail or to write in between.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

type fakeConfig struct {
	ID      string
	Version uint64
	Name    string
	Labels  map[string]string
	Data    []byte
}

type fakeDocker struct {
	t    *testing.T
	Sock string

	mu       sync.Mutex
	api      string                 // the API version it speaks ("1.41", as Docker 20.10)
	configs  map[string]*fakeConfig // by ID
	index    uint64                 // the store's raft index: every write takes the next one
	nextID   int
	managers int
	calls    []string // "METHOD /path" of every call
	// fail, when set, answers every call with this status and message (as the engine does when
	// the swarm has no leader)
	failStatus int
	failMsg    string
	// delay, when set, is how long every call takes
	delay time.Duration
	// beforeUpdate, when set, runs (with mu held) before an update is checked: another arbiter
	// writing in between
	beforeUpdate func(f *fakeDocker, c *fakeConfig)
	// beforeCreate, when set, runs (with mu held) before a create is done
	beforeCreate func(f *fakeDocker, name string)
}

// what Docker 20.10 answers (HTTP 500) to an update at any other version than the current one
const seqMsg = "rpc error: code = Unknown desc = update out of sequence"

func newFakeDocker(t *testing.T) *fakeDocker {
	f := &fakeDocker{t: t, api: "1.41", configs: map[string]*fakeConfig{}, index: 100, managers: 3}
	f.Sock = filepath.Join(t.TempDir(), "docker.sock")
	ln, err := net.Listen("unix", f.Sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	_ = srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return f
}

// add makes a config as someone else would; its ID.
func (f *fakeDocker) add(name string, labels map[string]string) string {
	f.nextID++
	f.index++
	id := fmt.Sprintf("id%04d", f.nextID)
	f.configs[id] = &fakeConfig{ID: id, Version: f.index, Name: name, Labels: labels, Data: []byte(leaseNote)}
	return id
}

// write changes c's labels as another arbiter would (mu held).
func (f *fakeDocker) write(c *fakeConfig, l Lease) {
	f.index++
	c.Version = f.index
	c.Labels = withLease(c.Labels, l)
}

func (f *fakeDocker) byName(name string) *fakeConfig {
	for _, c := range f.configs {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func (f *fakeDocker) lease(name string) Lease {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.byName(name)
	if c == nil {
		f.t.Fatalf("no config %s", name)
	}
	l, err := leaseFromLabels(c.Labels)
	if err != nil {
		f.t.Fatal(err)
	}
	return l
}

func (f *fakeDocker) count(call string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c == call {
			n++
		}
	}
	return n
}

// prefix is the path prefix of the API version it speaks.
func (f *fakeDocker) prefix() string { return "/v" + f.api }

func (f *fakeDocker) set(fn func(f *fakeDocker)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func wire(c *fakeConfig) map[string]any {
	return map[string]any{
		"ID":        c.ID,
		"Version":   map[string]any{"Index": c.Version},
		"CreatedAt": "2030-01-01T00:00:00Z",
		"Spec": map[string]any{"Name": c.Name, "Labels": c.Labels,
			"Data": base64.StdEncoding.EncodeToString(c.Data)},
	}
}

func answer(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, status int, msg string) {
	answer(w, status, map[string]string{"message": msg})
}

func (f *fakeDocker) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.calls = append(f.calls, r.Method+" "+r.URL.Path)
	delay, status, msg := f.delay, f.failStatus, f.failMsg
	f.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.URL.Path == "/_ping" {
		// as the engine's: answered whatever the state of the swarm
		w.Header().Set("Api-Version", f.api)
		w.Header().Set("Server", "Docker/fake")
		_, _ = w.Write([]byte("OK"))
		return
	}
	if status != 0 {
		fail(w, status, msg)
		return
	}
	path, ok := strings.CutPrefix(r.URL.Path, f.prefix())
	if !ok {
		fail(w, http.StatusBadRequest, "client version "+strings.Split(r.URL.Path, "/")[1]+" is not "+f.api)
		return
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case r.Method == "GET" && path == "/nodes":
		var nodes []map[string]any
		for i := range f.managers + 1 {
			role := "manager"
			if i == f.managers {
				role = "worker"
			}
			nodes = append(nodes, map[string]any{"ID": fmt.Sprint("node", i), "Spec": map[string]any{"Role": role}})
		}
		answer(w, http.StatusOK, nodes)
	case r.Method == "GET" && path == "/configs":
		var filters struct{ Name []string }
		if err := json.Unmarshal([]byte(r.URL.Query().Get("filters")), &filters); err != nil {
			fail(w, http.StatusBadRequest, "filters: "+err.Error())
			return
		}
		out := []map[string]any{}
		for _, c := range f.configs {
			// as the engine (20.10): the name filter matches the names that begin with it
			if len(filters.Name) == 0 || strings.HasPrefix(c.Name, filters.Name[0]) {
				out = append(out, wire(c))
			}
		}
		answer(w, http.StatusOK, out)
	case r.Method == "POST" && path == "/configs/create":
		var spec struct {
			Name   string
			Labels map[string]string
			Data   []byte
		}
		if err := json.NewDecoder(r.Body).Decode(&spec); err != nil {
			fail(w, http.StatusBadRequest, err.Error())
			return
		}
		if f.beforeCreate != nil {
			f.beforeCreate(f, spec.Name)
		}
		if f.byName(spec.Name) != nil {
			fail(w, http.StatusConflict, "rpc error: code = AlreadyExists desc = config "+spec.Name+" already exists")
			return
		}
		id := f.add(spec.Name, spec.Labels)
		f.configs[id].Data = spec.Data
		answer(w, http.StatusCreated, map[string]string{"ID": id})
	case r.Method == "GET" && len(parts) == 2 && parts[0] == "configs":
		c := f.configs[parts[1]]
		if c == nil {
			fail(w, http.StatusNotFound, "config "+parts[1]+" not found")
			return
		}
		answer(w, http.StatusOK, wire(c))
	case r.Method == "POST" && len(parts) == 3 && parts[0] == "configs" && parts[2] == "update":
		c := f.configs[parts[1]]
		if c == nil {
			fail(w, http.StatusNotFound, "config "+parts[1]+" not found")
			return
		}
		version, err := strconv.ParseUint(r.URL.Query().Get("version"), 10, 64)
		if err != nil {
			fail(w, http.StatusBadRequest, "invalid version")
			return
		}
		var spec struct {
			Name   string
			Labels map[string]string
			Data   []byte
		}
		if err := json.NewDecoder(r.Body).Decode(&spec); err != nil {
			fail(w, http.StatusBadRequest, err.Error())
			return
		}
		if f.beforeUpdate != nil {
			f.beforeUpdate(f, c)
		}
		if spec.Name != c.Name || spec.Data != nil && string(spec.Data) != string(c.Data) {
			fail(w, http.StatusBadRequest,
				"rpc error: code = InvalidArgument desc = only updates to Labels are allowed")
			return
		}
		if version != c.Version {
			fail(w, http.StatusInternalServerError, seqMsg)
			return
		}
		f.index++
		c.Version = f.index
		c.Labels = spec.Labels
		w.WriteHeader(http.StatusOK)
	default:
		fail(w, http.StatusNotFound, "page not found")
	}
}
