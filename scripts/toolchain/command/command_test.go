package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/structpb"
)

const urn = "urn:pulumi:dev::pgha::command:local:Command::cmd"

// --- helpers

type pm = resource.PropertyMap

func str(s string) resource.PropertyValue                    { return resource.NewStringProperty(s) }
func secret(v resource.PropertyValue) resource.PropertyValue { return resource.MakeSecret(v) }
func unknown() resource.PropertyValue                        { return resource.MakeComputed(str("")) }
func list(vs ...resource.PropertyValue) resource.PropertyValue {
	return resource.NewArrayProperty(vs)
}
func env(kv ...string) resource.PropertyValue {
	m := pm{}
	for i := 0; i < len(kv); i += 2 {
		m[resource.PropertyKey(kv[i])] = str(kv[i+1])
	}
	return resource.NewObjectProperty(m)
}

func wire(t *testing.T, m pm) *structpb.Struct {
	t.Helper()
	s, err := marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func unwire(t *testing.T, s *structpb.Struct) pm {
	t.Helper()
	m, err := unmarshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// testProvider records the log lines it would send to the engine.
type testProvider struct {
	*provider
	mu    sync.Mutex
	lines []string
}

func newTestProvider() *testProvider {
	tp := &testProvider{provider: newProvider("1.2.1")}
	tp.logf = func(_, line string) {
		tp.mu.Lock()
		tp.lines = append(tp.lines, line)
		tp.mu.Unlock()
	}
	return tp
}

func diff(t *testing.T, olds, news pm, ignore ...string) *pulumirpc.DiffResponse {
	t.Helper()
	resp, err := newProvider("test").Diff(context.Background(), &pulumirpc.DiffRequest{
		Urn: urn, Olds: wire(t, outputs(olds, str("out"), str(""))), News: wire(t, news),
		OldInputs: wire(t, olds), IgnoreChanges: ignore,
	})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func kinds(resp *pulumirpc.DiffResponse) map[string]string {
	m := map[string]string{}
	for k, v := range resp.DetailedDiff {
		m[k] = v.Kind.String()
	}
	return m
}

// --- diff and replace rules (infer's diff with replaceOnChanges on triggers)

func TestDiff(t *testing.T) {
	base := pm{"create": str("echo a"), "environment": env("A", "1", "B", "2"), "triggers": list(str("x"))}
	with := func(k string, v resource.PropertyValue) pm {
		m := base.Copy()
		m[resource.PropertyKey(k)] = v
		return m
	}
	without := func(k string) pm {
		m := base.Copy()
		delete(m, resource.PropertyKey(k))
		return m
	}
	cases := []struct {
		name     string
		olds     pm
		news     pm
		ignore   []string
		changes  pulumirpc.DiffResponse_DiffChanges
		detailed map[string]string
		replaces []string
	}{
		{"unchanged", base, base.Copy(), nil, pulumirpc.DiffResponse_DIFF_NONE, map[string]string{}, nil},
		{"create changed: update", base, with("create", str("echo b")), nil,
			pulumirpc.DiffResponse_DIFF_SOME, map[string]string{"create": "UPDATE"}, nil},
		{"update added: update", base, with("update", str("echo u")), nil,
			pulumirpc.DiffResponse_DIFF_SOME, map[string]string{"update": "ADD"}, nil},
		{"delete removed: update", with("delete", str("rm x")), base, nil,
			pulumirpc.DiffResponse_DIFF_SOME, map[string]string{"delete": "DELETE"}, nil},
		{"one variable changed: nested path, update", base, with("environment", env("A", "1", "B", "3")), nil,
			pulumirpc.DiffResponse_DIFF_SOME, map[string]string{"environment.B": "UPDATE"}, nil},
		{"trigger changed: replace", base, with("triggers", list(str("y"))), nil,
			pulumirpc.DiffResponse_DIFF_SOME, map[string]string{"triggers[0]": "UPDATE_REPLACE"}, []string{"triggers"}},
		{"trigger appended: replace", base, with("triggers", list(str("x"), str("y"))), nil,
			pulumirpc.DiffResponse_DIFF_SOME, map[string]string{"triggers[1]": "ADD_REPLACE"}, []string{"triggers"}},
		{"triggers added: replace", without("triggers"), base, nil,
			pulumirpc.DiffResponse_DIFF_SOME, map[string]string{"triggers": "ADD_REPLACE"}, []string{"triggers"}},
		{"triggers removed: replace", base, without("triggers"), nil,
			pulumirpc.DiffResponse_DIFF_SOME, map[string]string{"triggers": "DELETE_REPLACE"}, []string{"triggers"}},
		{"unknown trigger (preview): replace", base, with("triggers", list(unknown())), nil,
			pulumirpc.DiffResponse_DIFF_SOME, map[string]string{"triggers[0]": "UPDATE_REPLACE"}, []string{"triggers"}},
		{"trigger and create changed: replace", base, func() pm {
			m := with("triggers", list(str("y")))
			m["create"] = str("echo b")
			return m
		}(), nil, pulumirpc.DiffResponse_DIFF_SOME,
			map[string]string{"triggers[0]": "UPDATE_REPLACE", "create": "UPDATE"}, []string{"triggers"}},
		{"ignoreChanges environment", base, with("environment", env("A", "9")), []string{"environment"},
			pulumirpc.DiffResponse_DIFF_NONE, map[string]string{}, nil},
		{"ignoreChanges create", base, with("create", str("echo b")), []string{"create"},
			pulumirpc.DiffResponse_DIFF_NONE, map[string]string{}, nil},
		{"ignoreChanges one variable", base, with("environment", env("A", "1", "B", "3")), []string{"environment.B"},
			pulumirpc.DiffResponse_DIFF_NONE, map[string]string{}, nil},
		{"same value, secret both times: no change",
			with("environment", secret(env("P", "pw"))), with("environment", secret(env("P", "pw"))), nil,
			pulumirpc.DiffResponse_DIFF_NONE, map[string]string{}, nil},
		{"secret value changed: update", with("environment", secret(env("P", "pw"))),
			with("environment", secret(env("P", "pw2"))), nil,
			pulumirpc.DiffResponse_DIFF_SOME, map[string]string{"environment": "UPDATE"}, nil},
		{"internal keys are no inputs", base, with("__defaults", list()), nil,
			pulumirpc.DiffResponse_DIFF_NONE, map[string]string{}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := diff(t, c.olds, c.news, c.ignore...)
			if resp.Changes != c.changes {
				t.Errorf("changes = %v, want %v", resp.Changes, c.changes)
			}
			if got := kinds(resp); !reflect.DeepEqual(got, c.detailed) {
				t.Errorf("detailed diff = %v, want %v", got, c.detailed)
			}
			if (len(resp.Replaces) > 0 || len(c.replaces) > 0) && !reflect.DeepEqual(resp.Replaces, c.replaces) {
				t.Errorf("replaces = %v, want %v", resp.Replaces, c.replaces)
			}
			if resp.DeleteBeforeReplace {
				t.Error("deleteBeforeReplace set: replacements must be create-before-delete by default")
			}
			if !resp.HasDetailedDiff {
				t.Error("hasDetailedDiff not set")
			}
		})
	}
}

func TestDiffWithoutOldInputsUsesState(t *testing.T) {
	olds := pm{"create": str("echo a")}
	resp, err := newProvider("test").Diff(context.Background(), &pulumirpc.DiffRequest{
		Urn: urn, Olds: wire(t, outputs(olds, str("a"), str(""))), News: wire(t, pm{"create": str("echo b")}),
	})
	if err != nil {
		t.Fatal(err)
	}
	// stdout and stderr are in the state, not inputs: they must not show as deleted
	if got := kinds(resp); !reflect.DeepEqual(got, map[string]string{"create": "UPDATE"}) {
		t.Errorf("detailed diff = %v", got)
	}
}

// --- Check

func TestCheck(t *testing.T) {
	cases := []struct {
		name   string
		inputs pm
		want   []string // "property: reason" prefixes
	}{
		{"valid", pm{"create": str("true"), "environment": env("A", "1"), "interpreter": list(str("/bin/sh"), str("-c")),
			"logging": str("stderr"), "addPreviousOutputInEnv": resource.NewBoolProperty(false),
			"triggers": list(str("a"), resource.NewNumberProperty(1), resource.NewObjectProperty(pm{}))}, nil},
		{"unknowns and secrets pass", pm{"create": unknown(), "environment": secret(env("P", "x")),
			"triggers": list(unknown()), "logging": unknown()}, nil},
		{"unknown property", pm{"crate": str("true")}, []string{"crate: is not an input"}},
		{"wrong types", pm{"create": resource.NewNumberProperty(1), "environment": env("A", "1").ObjectValue()["A"],
			"interpreter": list(resource.NewBoolProperty(true))},
			[]string{"create: must be a string", "environment: must be a map of strings", "interpreter: must be a list of strings"}},
		{"logging enum", pm{"logging": str("all")}, []string{"logging: must be one of stdout, stderr, stdoutAndStderr, none"}},
		{"assetPaths refused", pm{"assetPaths": list(str("*.txt"))}, []string{"assetPaths: is not supported by pgha's command provider"}},
		{"archivePaths refused", pm{"archivePaths": list()}, []string{"archivePaths: is not supported"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, err := newProvider("test").Check(context.Background(),
				&pulumirpc.CheckRequest{Urn: urn, News: wire(t, c.inputs)})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range resp.Failures {
				got = append(got, f.Property+": "+f.Reason)
			}
			sort.Strings(got)
			if len(got) != len(c.want) {
				t.Fatalf("failures = %q, want %q", got, c.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], c.want[i]) {
					t.Errorf("failure %q, want %q...", got[i], c.want[i])
				}
			}
			if !unwire(t, resp.Inputs).DeepEquals(c.inputs) {
				t.Errorf("inputs changed by Check: %v", unwire(t, resp.Inputs))
			}
		})
	}
	if _, err := newProvider("test").Check(context.Background(), &pulumirpc.CheckRequest{
		Urn: "urn:pulumi:dev::pgha::command:remote:Command::r", News: wire(t, pm{})}); err == nil {
		t.Error("remote:Command accepted")
	}
}

// --- running commands

func runOK(t *testing.T, s runSpec) (string, string) {
	t.Helper()
	out, errOut, err := run(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return out, errOut
}

func TestRunEnvironmentStdinDir(t *testing.T) {
	t.Setenv("PGHA_TEST_INHERITED", "from-provider")
	dir := t.TempDir()
	stdin := "line one\nline two\n"
	out, _ := runOK(t, runSpec{
		command: `echo "$PGHA_TEST_INHERITED $A $B"; pwd; cat`,
		in:      args{Environment: map[string]string{"A": "a value", "B": "b"}, Dir: &dir, Stdin: &stdin},
	})
	real, _ := filepath.EvalSymlinks(dir)
	want := "from-provider a value b\n" + real + "\nline one\nline two"
	if out != want {
		t.Errorf("stdout = %q, want %q", out, want)
	}

	// the environment input overrides the provider's own
	out, _ = runOK(t, runSpec{command: `echo "$PGHA_TEST_INHERITED"`,
		in: args{Environment: map[string]string{"PGHA_TEST_INHERITED": "overridden"}}})
	if out != "overridden" {
		t.Errorf("stdout = %q", out)
	}

	// default directory: the provider's working directory (the program's, as the engine starts it)
	wd, _ := os.Getwd()
	if out, _ = runOK(t, runSpec{command: "pwd"}); out != wd {
		t.Errorf("pwd = %q, want %q", out, wd)
	}

	// no stdin input: the command reads end of file at once
	if out, _ = runOK(t, runSpec{command: "cat; echo done"}); out != "done" {
		t.Errorf("stdout = %q", out)
	}
}

func TestRunOutputsTrimOneNewline(t *testing.T) {
	out, errOut := runOK(t, runSpec{command: `printf 'a\n\n'; printf 'e\n' >&2`})
	if out != "a\n" || errOut != "e" {
		t.Errorf("stdout %q stderr %q", out, errOut)
	}
}

func TestRunInterpreter(t *testing.T) {
	out, _ := runOK(t, runSpec{command: `echo "$0"`, in: args{Interpreter: []string{"/bin/sh", "-c"}}})
	if out != "/bin/sh" {
		t.Errorf("stdout = %q", out)
	}
	// with -e the first failing command stops the script
	_, _, err := run(context.Background(), runSpec{command: "false; echo reached", in: args{Interpreter: []string{"/bin/sh", "-e", "-c"}}})
	if err == nil {
		t.Error("sh -e -c: no error")
	}
}

func TestRunFailure(t *testing.T) {
	_, _, err := run(context.Background(), runSpec{
		command: "echo out; echo boom >&2; exit 3",
		in:      args{Environment: map[string]string{"PASSWORD": "hunter2"}},
	})
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{"exit status 3", `running "echo out; echo boom >&2; exit 3"`, "boom", "out"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "hunter2") || strings.Contains(msg, "PASSWORD") {
		t.Errorf("error %q shows the environment", msg)
	}

	// a command that cannot start
	if _, _, err := run(context.Background(), runSpec{command: "x", in: args{Interpreter: []string{"/nonexistent/sh"}}}); err == nil {
		t.Error("missing interpreter: no error")
	}
	missing := filepath.Join(t.TempDir(), "gone")
	if _, _, err := run(context.Background(), runSpec{command: "true", in: args{Dir: &missing}}); err == nil {
		t.Error("missing dir: no error")
	}
	// cancelled
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := run(ctx, runSpec{command: "sleep 5"}); err == nil || !strings.Contains(err.Error(), "canceled") {
		t.Errorf("cancelled: %v", err)
	}
}

func TestRunLogging(t *testing.T) {
	const command = `echo o1; echo e1 >&2; printf o2`
	cases := map[string][]string{
		"":                {"e1", "o1", "o2"},
		"stdoutAndStderr": {"e1", "o1", "o2"},
		"stdout":          {"o1", "o2"},
		"stderr":          {"e1"},
		"none":            nil,
	}
	for mode, want := range cases {
		var lines []string
		out, errOut := runOK(t, runSpec{command: command, in: args{Logging: mode},
			logLine: func(l string) { lines = append(lines, l) }})
		sort.Strings(lines)
		if !reflect.DeepEqual(lines, want) {
			t.Errorf("logging %q: lines %q, want %q", mode, lines, want)
		}
		// logging never changes what is captured
		if out != "o1\no2" || errOut != "e1" {
			t.Errorf("logging %q: stdout %q stderr %q", mode, out, errOut)
		}
	}
}

func TestRunPreviousOutput(t *testing.T) {
	const command = `echo "[${PULUMI_COMMAND_STDOUT-unset}] [${PULUMI_COMMAND_STDERR-unset}]"`
	no := false
	yes := true
	for _, c := range []struct {
		add            *bool
		prevOut, prevE string
		want           string
	}{
		{nil, "old out", "old err", "[old out] [old err]"},
		{&yes, "old out", "", "[old out] [unset]"},
		{&no, "old out", "old err", "[unset] [unset]"},
		{nil, "", "", "[unset] [unset]"},
	} {
		out, _ := runOK(t, runSpec{command: command, in: args{AddPreviousOutputInEnv: c.add},
			prevStdout: c.prevOut, prevStderr: c.prevE})
		if out != c.want {
			t.Errorf("add=%v prev=%q/%q: %q, want %q", c.add, c.prevOut, c.prevE, out, c.want)
		}
	}
}

// --- the lifecycle through the gRPC methods

func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	p := newTestProvider()
	dir := t.TempDir()
	logFile := filepath.Join(dir, "log")
	inputs := pm{
		"create":      str(`echo "create $V" >> "$LOG"; echo "out-$V"`),
		"update":      str(`echo "update $V was $PULUMI_COMMAND_STDOUT" >> "$LOG"; echo "upd-$V"`),
		"delete":      str(`echo "delete $V last $PULUMI_COMMAND_STDOUT" >> "$LOG"`),
		"environment": env("LOG", logFile, "V", "1"),
		"logging":     str("stdout"),
	}
	readLog := func() string { b, _ := os.ReadFile(logFile); return string(b) }

	// preview: nothing runs, stdout unknown
	created, err := p.Create(ctx, &pulumirpc.CreateRequest{Urn: urn, Properties: wire(t, inputs), Preview: true})
	if err != nil {
		t.Fatal(err)
	}
	if readLog() != "" || !unwire(t, created.Properties)["stdout"].IsComputed() {
		t.Fatalf("preview ran the command or knew stdout: %q %v", readLog(), unwire(t, created.Properties))
	}

	created, err = p.Create(ctx, &pulumirpc.CreateRequest{Urn: urn, Properties: wire(t, inputs)})
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^cmd[0-9a-f]{8}$`).MatchString(created.Id) {
		t.Errorf("id %q", created.Id)
	}
	state := unwire(t, created.Properties)
	if state["stdout"].StringValue() != "out-1" || state["stderr"].StringValue() != "" ||
		!inputsOf(state).DeepEquals(inputs) {
		t.Fatalf("state after create: %v", state)
	}
	if p.lines[0] != "out-1" {
		t.Errorf("log lines %q", p.lines)
	}

	// refresh: the state comes back unchanged
	read, err := p.Read(ctx, &pulumirpc.ReadRequest{Id: created.Id, Urn: urn, Properties: created.Properties, Inputs: wire(t, inputs)})
	if err != nil || read.Id != created.Id || !unwire(t, read.Properties).DeepEquals(state) || !unwire(t, read.Inputs).DeepEquals(inputs) {
		t.Errorf("read changed something: %v %v", read, err)
	}

	// update preview: nothing runs, stdout unknown
	news := inputs.Copy()
	news["environment"] = env("LOG", logFile, "V", "2")
	upd, err := p.Update(ctx, &pulumirpc.UpdateRequest{Id: created.Id, Urn: urn, Olds: created.Properties,
		News: wire(t, news), OldInputs: wire(t, inputs), Preview: true})
	if err != nil {
		t.Fatal(err)
	}
	if !unwire(t, upd.Properties)["stdout"].IsComputed() || readLog() != "create 1\n" {
		t.Errorf("update preview: %v, log %q", unwire(t, upd.Properties), readLog())
	}

	// update: `update` runs with the previous stdout
	upd, err = p.Update(ctx, &pulumirpc.UpdateRequest{Id: created.Id, Urn: urn, Olds: created.Properties,
		News: wire(t, news), OldInputs: wire(t, inputs)})
	if err != nil {
		t.Fatal(err)
	}
	state = unwire(t, upd.Properties)
	if state["stdout"].StringValue() != "upd-2" {
		t.Errorf("state after update: %v", state)
	}

	// without an update command, create runs on update
	news2 := news.Copy()
	delete(news2, "update")
	news2["environment"] = env("LOG", logFile, "V", "3")
	upd2, err := p.Update(ctx, &pulumirpc.UpdateRequest{Id: created.Id, Urn: urn, Olds: upd.Properties,
		News: wire(t, news2), OldInputs: wire(t, news)})
	if err != nil {
		t.Fatal(err)
	}

	// delete: with the state's inputs and last stdout
	if _, err := p.Delete(ctx, &pulumirpc.DeleteRequest{Id: created.Id, Urn: urn, Properties: upd2.Properties}); err != nil {
		t.Fatal(err)
	}
	want := "create 1\nupdate 2 was out-1\ncreate 3\ndelete 3 last out-3\n"
	if got := readLog(); got != want {
		t.Errorf("commands ran:\n%s\nwant:\n%s", got, want)
	}

	// a failing update leaves no new state and says why
	bad := news2.Copy()
	bad["create"] = str("echo nope >&2; exit 4")
	if _, err := p.Update(ctx, &pulumirpc.UpdateRequest{Id: created.Id, Urn: urn, Olds: upd2.Properties,
		News: wire(t, bad)}); err == nil || !strings.Contains(err.Error(), "exit status 4") || !strings.Contains(err.Error(), "nope") {
		t.Errorf("failing update: %v", err)
	}
}

func TestCreateFailure(t *testing.T) {
	_, err := newTestProvider().Create(context.Background(), &pulumirpc.CreateRequest{Urn: urn,
		Properties: wire(t, pm{"create": str("echo boom >&2; exit 3")})})
	if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "boom") {
		t.Errorf("error = %v", err)
	}
}

func TestSecretnessFollowsTheInputOfTheSameName(t *testing.T) {
	ctx := context.Background()
	p := newTestProvider()
	inputs := pm{"create": str(`echo "has ${#TOKEN}"; echo "is $TOKEN" >&2`), "environment": secret(env("TOKEN", "abc"))}
	created, err := p.Create(ctx, &pulumirpc.CreateRequest{Urn: urn, Properties: wire(t, inputs)})
	if err != nil {
		t.Fatal(err)
	}
	state := unwire(t, created.Properties)
	// as pulumi-command 1.2.1: the secret input stays secret in the outputs; stdout and stderr
	// are not made secret by it (a program marks them with additionalSecretOutputs)
	if !state["environment"].IsSecret() {
		t.Errorf("environment is not secret: %v", state["environment"])
	}
	for _, k := range []resource.PropertyKey{"stdout", "stderr", "create"} {
		if state[k].IsSecret() {
			t.Errorf("%s became secret", k)
		}
	}
	if got := state["stdout"].StringValue(); got != "has 3" {
		t.Errorf("stdout = %q", got)
	}

	// without secret inputs, nothing is secret
	created, err = p.Create(ctx, &pulumirpc.CreateRequest{Urn: urn, Properties: wire(t, pm{"create": str("echo hi")})})
	if err != nil {
		t.Fatal(err)
	}
	if unwire(t, created.Properties).ContainsSecrets() {
		t.Error("outputs secret without secret inputs")
	}

	// delete runs with the (secret) environment of the state
	dir := t.TempDir()
	del := pm{"delete": str(`echo "$TOKEN" > "$OUT"`), "environment": secret(env("TOKEN", "abc", "OUT", filepath.Join(dir, "o")))}
	if _, err := p.Delete(ctx, &pulumirpc.DeleteRequest{Urn: urn, Properties: wire(t, outputs(del, secret(str("")), secret(str(""))))}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "o")); string(b) != "abc\n" {
		t.Errorf("delete saw TOKEN %q", b)
	}
}

func TestEngineAddress(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, ""},
		{[]string{"127.0.0.1:5000"}, "127.0.0.1:5000"},
		{[]string{"--logtostderr", "-v=9", "--tracing", "http://x", "127.0.0.1:5000"}, "127.0.0.1:5000"},
	} {
		if got, err := engineAddress(c.args); err != nil || got != c.want {
			t.Errorf("%q: %q %v", c.args, got, err)
		}
	}
	if _, err := engineAddress([]string{"a", "b"}); err == nil {
		t.Error("two addresses accepted")
	}
}

// --- the schema against the SDK this plugin serves

// sdkNames reads local:Command's output names (class members) and input names (CommandArgs)
// from the SDK's declaration file.
func sdkNames(t *testing.T, dts string) (inputs, outputs []string) {
	b, err := os.ReadFile(dts)
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	class := src[strings.Index(src, "export declare class Command"):]
	class = class[:strings.Index(class, "constructor(")]
	for _, m := range regexp.MustCompile(`(?m)^\s+readonly (\w+): pulumi\.Output<`).FindAllStringSubmatch(class, -1) {
		outputs = append(outputs, m[1])
	}
	argsDecl := src[strings.Index(src, "export interface CommandArgs {"):]
	argsDecl = argsDecl[:strings.Index(argsDecl, "\n}")]
	for _, m := range regexp.MustCompile(`(?m)^\s+(\w+)\?: pulumi\.Input<`).FindAllStringSubmatch(argsDecl, -1) {
		inputs = append(inputs, m[1])
	}
	sort.Strings(inputs)
	sort.Strings(outputs)
	return inputs, outputs
}

func servedSchema(t *testing.T) map[string]any {
	resp, err := newProvider("1.2.1").GetSchema(context.Background(), &pulumirpc.GetSchemaRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal([]byte(resp.Schema), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func keysOf(m any) []string {
	var l []string
	for k := range m.(map[string]any) {
		l = append(l, k)
	}
	sort.Strings(l)
	return l
}

// TestSchemaMatchesSDK: PGHA_COMMAND_SDK_DTS names @pulumi/command's local/command.d.ts
// (default: the project's node_modules, three directories up from these sources).
func TestSchemaMatchesSDK(t *testing.T) {
	dts := os.Getenv("PGHA_COMMAND_SDK_DTS")
	if dts == "" {
		dts = "../../../node_modules/@pulumi/command/local/command.d.ts"
	}
	if _, err := os.Stat(dts); err != nil {
		t.Skipf("no SDK declarations at %s (set PGHA_COMMAND_SDK_DTS)", dts)
	}
	sdkIn, sdkOut := sdkNames(t, dts)
	if len(sdkIn) == 0 || len(sdkOut) == 0 {
		t.Fatalf("could not read names from %s", dts)
	}
	s := servedSchema(t)
	res := s["resources"].(map[string]any)[commandType].(map[string]any)
	if got := keysOf(res["inputProperties"]); !reflect.DeepEqual(got, sdkIn) {
		t.Errorf("schema inputs %q\n SDK inputs %q", got, sdkIn)
	}
	if got := keysOf(res["properties"]); !reflect.DeepEqual(got, sdkOut) {
		t.Errorf("schema outputs %q\n SDK outputs %q", got, sdkOut)
	}
	if s["version"] != "1.2.1" || s["name"] != "command" {
		t.Errorf("name %v version %v", s["name"], s["version"])
	}
}

// TestSchemaMatchesReference: PGHA_COMMAND_REFERENCE_SCHEMA names pulumi-command's own
// provider/cmd/pulumi-resource-command/schema.json; local:Command's property types (descriptions
// aside) and the Logging enum must equal the served ones. Skipped without it.
func TestSchemaMatchesReference(t *testing.T) {
	path := os.Getenv("PGHA_COMMAND_REFERENCE_SCHEMA")
	if path == "" {
		t.Skip("PGHA_COMMAND_REFERENCE_SCHEMA not set")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ref map[string]any
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	var strip func(any) any
	strip = func(v any) any {
		switch v := v.(type) {
		case map[string]any:
			m := map[string]any{}
			for k, e := range v {
				if k != "description" {
					m[k] = strip(e)
				}
			}
			return m
		case []any:
			l := make([]any, len(v))
			for i, e := range v {
				l[i] = strip(e)
			}
			return l
		}
		return v
	}
	s := servedSchema(t)
	for _, path := range [][]string{{"resources", commandType}, {"types", "command:local:Logging"}} {
		want, got := any(ref), any(s)
		for _, k := range path {
			want, got = want.(map[string]any)[k], got.(map[string]any)[k]
		}
		if !reflect.DeepEqual(strip(got), strip(want)) {
			w, _ := json.MarshalIndent(strip(want), "", " ")
			g, _ := json.MarshalIndent(strip(got), "", " ")
			t.Errorf("%v differs:\nreference %s\nserved %s", path, w, g)
		}
	}
}

// customTimeouts and the engine's Cancel stop a running command. (What is killed is the
// interpreter's process, as in the reference: children it started keep running, and the step
// ends once they close stdout and stderr; hence `exec sleep` here.)
func TestTimeoutAndCancel(t *testing.T) {
	req := func(timeout float64) *pulumirpc.CreateRequest {
		return &pulumirpc.CreateRequest{Urn: urn, Properties: wire(t, pm{"create": str("exec sleep 30")}), Timeout: timeout}
	}
	start := time.Now()
	if _, err := newTestProvider().Create(context.Background(), req(0.3)); err == nil ||
		!strings.Contains(err.Error(), "deadline exceeded") {
		t.Errorf("timeout: %v", err)
	}
	p := newTestProvider()
	go func() { time.Sleep(300 * time.Millisecond); _, _ = p.Cancel(context.Background(), nil) }()
	if _, err := p.Create(context.Background(), req(0)); err == nil || !strings.Contains(err.Error(), "canceled") {
		t.Errorf("cancel: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v", d)
	}
}

// --- the function local:run (an invoke: it runs during previews too)

func invoke(t *testing.T, p *testProvider, tok string, args pm) (*pulumirpc.InvokeResponse, error) {
	t.Helper()
	return p.Invoke(context.Background(), &pulumirpc.InvokeRequest{Tok: tok, Args: wire(t, args)})
}

func TestInvokeRun(t *testing.T) {
	p := newTestProvider()
	resp, err := invoke(t, p, runFunction, pm{
		"command":     str(`printf '%s\n' "$GREETING"; echo warn >&2`),
		"environment": env("GREETING", "hello"),
		"logging":     str("none"),
	})
	if err != nil || len(resp.Failures) > 0 {
		t.Fatalf("invoke: %v %v", err, resp.GetFailures())
	}
	out := unwire(t, resp.Return)
	if out["stdout"].StringValue() != "hello" || out["stderr"].StringValue() != "warn" {
		t.Fatalf("outputs: %v", out)
	}
	if out["command"].StringValue() == "" || out["logging"].StringValue() != "none" {
		t.Fatalf("the inputs are not returned with the outputs: %v", out)
	}
	if len(p.lines) != 0 {
		t.Fatalf("logging none logged %v", p.lines)
	}
	// logged when logging asks for it
	p = newTestProvider()
	if _, err := invoke(t, p, runFunction, pm{"command": str("echo shown")}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p.lines, []string{"shown"}) {
		t.Fatalf("logged %v, want [shown]", p.lines)
	}
}

func TestInvokeRunRefusals(t *testing.T) {
	p := newTestProvider()
	// a failing command fails the invoke, with its output
	if _, err := invoke(t, p, runFunction, pm{"command": str("echo broken >&2; exit 3")}); err == nil || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("a failing command: %v", err)
	}
	for name, args := range map[string]pm{
		"command":  {"logging": str("none")},
		"create":   {"command": str("true"), "create": str("true")},
		"triggers": {"command": str("true"), "triggers": list(str("x"))},
		"logging":  {"command": str("true"), "logging": str("loud")},
	} {
		resp, err := invoke(t, p, runFunction, args)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(resp.Failures) == 0 || resp.Failures[0].Property != name {
			t.Fatalf("%s: failures %v", name, resp.Failures)
		}
	}
	if _, err := invoke(t, p, "command:remote:run", pm{"command": str("true")}); err == nil || !strings.Contains(err.Error(), "does not implement the function command:remote:run") {
		t.Fatalf("another function: %v", err)
	}
}
