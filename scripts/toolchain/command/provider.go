package main

// The ResourceProvider gRPC service for command:local:Command. Behaviour follows pulumi-command
// 1.2.1 (local/commandController.go) as served by pulumi-go-provider v1.3.0's infer layer
// (infer/resource.go: Check, Diff, Create, Read, Update, Delete); differences are noted where
// they are.

import (
	"context"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
)

type provider struct {
	pulumirpc.UnimplementedResourceProviderServer

	version string

	mu     sync.Mutex
	engine pulumirpc.EngineClient // nil until attached: log lines are then dropped

	// logf receives log lines instead of the engine when set (tests).
	logf func(urn, line string)

	// cancelled when the engine calls Cancel: every running command is stopped.
	stopping context.Context
	stop     context.CancelFunc
}

func newProvider(version string) *provider {
	ctx, cancel := context.WithCancel(context.Background())
	return &provider{version: version, stopping: ctx, stop: cancel}
}

func (p *provider) attachEngine(addr string) error {
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()), rpcutil.GrpcChannelOptions())
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.engine = pulumirpc.NewEngineClient(conn)
	p.mu.Unlock()
	return nil
}

// logLine sends one line of a command's output to the engine, as an ephemeral info message of
// the resource (what infer's Logger.InfoStatus does: it shows in the progress display).
func (p *provider) logLine(ctx context.Context, urn string) func(string) {
	return func(line string) {
		if p.logf != nil {
			p.logf(urn, line)
			return
		}
		p.mu.Lock()
		engine := p.engine
		p.mu.Unlock()
		if engine == nil {
			return
		}
		_, _ = engine.Log(ctx, &pulumirpc.LogRequest{
			Severity:  pulumirpc.LogSeverity_INFO,
			Message:   strings.ToValidUTF8(line, "\uFFFD"),
			Urn:       urn,
			Ephemeral: true,
		})
	}
}

// opContext is the context of a create, update or delete: the request's, ended early by Cancel
// or by the step's custom timeout (as pulumi-go-provider's cancel middleware does).
func (p *provider) opContext(ctx context.Context, timeoutSeconds float64) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stopWatch := context.AfterFunc(p.stopping, cancel)
	if timeoutSeconds > 0 {
		var cancelTimeout context.CancelFunc
		ctx, cancelTimeout = context.WithTimeout(ctx, time.Duration(timeoutSeconds*float64(time.Second)))
		return ctx, func() { cancelTimeout(); stopWatch(); cancel() }
	}
	return ctx, func() { stopWatch(); cancel() }
}

// Properties cross the wire with secrets, unknowns and resource references kept as they are.
var marshalOpts = plugin.MarshalOptions{KeepUnknowns: true, KeepSecrets: true, KeepResources: true, SkipNulls: true}

func unmarshal(s *structpb.Struct) (resource.PropertyMap, error) {
	if s == nil {
		return resource.PropertyMap{}, nil
	}
	return plugin.UnmarshalProperties(s, marshalOpts)
}

// stateAndNews checks that a Diff or Update is for a command:local:Command and decodes its old
// state and new inputs.
func stateAndNews(urn string, olds, news *structpb.Struct) (resource.PropertyMap, resource.PropertyMap, error) {
	if err := checkType(urn); err != nil {
		return nil, nil, err
	}
	state, err := unmarshal(olds)
	if err != nil {
		return nil, nil, err
	}
	n, err := unmarshal(news)
	if err != nil {
		return nil, nil, err
	}
	return state, n, nil
}

func marshal(m resource.PropertyMap) (*structpb.Struct, error) {
	return plugin.MarshalProperties(m, marshalOpts)
}

func checkType(urn string) error {
	if t := string(resource.URN(urn).Type()); t != commandType {
		return status.Errorf(codes.InvalidArgument,
			"pgha's command provider implements only %s, not %s", commandType, t)
	}
	return nil
}

// --- plugin and provider configuration

func (p *provider) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: p.version}, nil
}

func (p *provider) GetSchema(context.Context, *pulumirpc.GetSchemaRequest) (*pulumirpc.GetSchemaResponse, error) {
	s, err := schemaJSON(p.version)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.GetSchemaResponse{Schema: s}, nil
}

// The provider has no configuration: whatever the engine sends is accepted and never a change.
func (p *provider) CheckConfig(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	return &pulumirpc.CheckResponse{Inputs: req.GetNews()}, nil
}

func (p *provider) DiffConfig(context.Context, *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_NONE}, nil
}

// Configure: what pulumi-go-provider answers (provider.go Configure), except AcceptOutputs: the
// engine then sends secrets and unknowns, never output values.
func (p *provider) Configure(context.Context, *pulumirpc.ConfigureRequest) (*pulumirpc.ConfigureResponse, error) {
	return &pulumirpc.ConfigureResponse{AcceptSecrets: true, SupportsPreview: true, AcceptResources: true}, nil
}

func (p *provider) Attach(_ context.Context, req *pulumirpc.PluginAttach) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, p.attachEngine(req.GetAddress())
}

func (p *provider) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	p.stop()
	return &emptypb.Empty{}, nil
}

// runFunction is pulumi-command 1.2.1's function local:run (local/run.go, RunInputs: command
// and BaseInputs): the command runs at once, during previews too, and its stdout and stderr
// come back with the inputs. pgha's program reads the lease with it on every preview.
const runFunction = "command:local:run"

// runInputs are the inputs local:run takes besides command (BaseInputs: no create, update,
// delete or triggers).
var runInputs = map[string]bool{
	"addPreviousOutputInEnv": true, "archivePaths": true, "assetPaths": true, "dir": true,
	"environment": true, "interpreter": true, "logging": true, "stdin": true,
}

func (p *provider) Invoke(ctx context.Context, req *pulumirpc.InvokeRequest) (*pulumirpc.InvokeResponse, error) {
	if req.GetTok() != runFunction {
		return nil, status.Errorf(codes.Unimplemented,
			"pgha's command provider does not implement the function %s (only %s, and the resource %s)",
			req.GetTok(), runFunction, commandType)
	}
	inputs, err := unmarshal(req.GetArgs())
	if err != nil {
		return nil, err
	}
	var failures []*pulumirpc.CheckFailure
	fail := func(property, reason string) {
		failures = append(failures, &pulumirpc.CheckFailure{Property: property, Reason: reason})
	}
	command, known := reveal(inputs["command"])
	if !known || !command.IsString() {
		fail("command", "is required: the command to run (a string)")
	}
	rest := resource.PropertyMap{}
	for k, v := range inputs {
		if k == "command" || strings.HasPrefix(string(k), "__") {
			continue
		}
		if !runInputs[string(k)] {
			fail(string(k), "is not an input of "+runFunction)
			continue
		}
		rest[k] = v
	}
	for _, f := range checkInputs(rest) {
		fail(f.property, f.reason)
	}
	if len(failures) > 0 {
		return &pulumirpc.InvokeResponse{Failures: failures}, nil
	}
	a, err := decodeArgs(rest)
	if err != nil {
		return nil, err
	}
	ctx, done := p.opContext(ctx, 0)
	defer done()
	out, errOut, err := run(ctx, runSpec{command: command.StringValue(), in: a, logLine: p.logLine(ctx, "")})
	if err != nil {
		return nil, err
	}
	result := inputsOf(rest)
	result["command"] = inputs["command"]
	result["stdout"], result["stderr"] = resource.NewStringProperty(out), resource.NewStringProperty(errOut)
	props, err := marshal(result)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.InvokeResponse{Return: props}, nil
}

// --- resource lifecycle

// Check validates the inputs and returns them unchanged (there are no defaults to apply).
func (p *provider) Check(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	if err := checkType(req.GetUrn()); err != nil {
		return nil, err
	}
	news, err := unmarshal(req.GetNews())
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.CheckResponse{Inputs: req.GetNews()}
	for _, f := range checkInputs(news) {
		resp.Failures = append(resp.Failures, &pulumirpc.CheckFailure{Property: f.property, Reason: f.reason})
	}
	return resp, nil
}

func (p *provider) Diff(_ context.Context, req *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	state, news, err := stateAndNews(req.GetUrn(), req.GetOlds(), req.GetNews())
	if err != nil {
		return nil, err
	}
	// The engine sends the old inputs; without them they are the input-named part of the state
	// (the outputs repeat the inputs).
	oldInputs := inputsOf(state)
	if req.GetOldInputs() != nil {
		if oldInputs, err = unmarshal(req.GetOldInputs()); err != nil {
			return nil, err
		}
	}
	return diffInputs(oldInputs, applyIgnoreChanges(news, state, req.GetIgnoreChanges())), nil
}

// applyIgnoreChanges sets each ignored path of news to its value in the state, when the state
// has one (infer/resource.go diff and Update). The engine already did the same with the old
// inputs before Check, so this only matters for engines that do not.
func applyIgnoreChanges(news, state resource.PropertyMap, ignore []string) resource.PropertyMap {
	if len(ignore) == 0 {
		return news
	}
	news = news.Copy()
	for _, s := range ignore {
		path, err := resource.ParsePropertyPath(s)
		if err != nil {
			continue
		}
		if v, ok := path.Get(resource.NewObjectProperty(state)); ok {
			path.Set(resource.NewObjectProperty(news), v)
		}
	}
	return news
}

// diffInputs compares old and new inputs property by property, the way infer does: a detailed
// diff of every changed path (nested: "environment.PGHA_LOST", "triggers[0]"); a change under
// triggers replaces the resource, any other change is an update. Replacement is
// create-before-delete unless the program sets deleteBeforeReplace (the engine's decision).
func diffInputs(olds, news resource.PropertyMap) *pulumirpc.DiffResponse {
	drop := func(m resource.PropertyMap) resource.PropertyMap {
		m = m.Copy()
		for k := range m {
			if k == "version" || strings.HasPrefix(string(k), "__") {
				delete(m, k) // engine- and SDK-internal keys are no inputs
			}
		}
		return m
	}
	objDiff := drop(olds).Diff(drop(news))
	if objDiff == nil {
		return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_NONE, HasDetailedDiff: true}
	}
	resp := &pulumirpc.DiffResponse{
		Changes:         pulumirpc.DiffResponse_DIFF_SOME,
		HasDetailedDiff: true,
		DetailedDiff:    map[string]*pulumirpc.PropertyDiff{},
	}
	diffs, replaces := map[string]bool{}, map[string]bool{}
	for path, d := range plugin.NewDetailedDiffFromObjectDiff(objDiff, true) {
		top := path
		if pp, err := resource.ParsePropertyPath(path); err == nil && len(pp) > 0 {
			if head, ok := pp[0].(string); ok {
				top = head
			}
		}
		kind := d.Kind
		if replaceOnChanges[top] {
			kind = kind.AsReplace()
			replaces[top] = true
		}
		diffs[top] = true
		resp.DetailedDiff[path] = &pulumirpc.PropertyDiff{Kind: rpcDiffKind(kind), InputDiff: true}
	}
	resp.Diffs, resp.Replaces = sortedKeys(diffs), sortedKeys(replaces)
	return resp
}

func rpcDiffKind(k plugin.DiffKind) pulumirpc.PropertyDiff_Kind {
	switch k {
	case plugin.DiffAdd:
		return pulumirpc.PropertyDiff_ADD
	case plugin.DiffAddReplace:
		return pulumirpc.PropertyDiff_ADD_REPLACE
	case plugin.DiffDelete:
		return pulumirpc.PropertyDiff_DELETE
	case plugin.DiffDeleteReplace:
		return pulumirpc.PropertyDiff_DELETE_REPLACE
	case plugin.DiffUpdateReplace:
		return pulumirpc.PropertyDiff_UPDATE_REPLACE
	default:
		return pulumirpc.PropertyDiff_UPDATE
	}
}

// outputs: the inputs as they are, then stdout and stderr.
//
// Secretness as pulumi-command 1.2.1 has it: an output is secret when the input of the same name
// is (the inputs keep their own secretness); stdout and stderr are not made secret because some
// input is (its test TestRemoteCommand/regress-256 asserts that stdout stays public). A program
// whose command may print a secret marks them itself: additionalSecretOutputs: ["stdout", "stderr"].
func outputs(inputs resource.PropertyMap, stdout, stderr resource.PropertyValue) resource.PropertyMap {
	out := inputsOf(inputs)
	out["stdout"], out["stderr"] = stdout, stderr
	return out
}

var unknownString = resource.MakeComputed(resource.NewStringProperty(""))

// Create runs `create` (when set; no command is no error). Nothing runs during a preview:
// stdout and stderr are unknown then.
func (p *provider) Create(ctx context.Context, req *pulumirpc.CreateRequest) (*pulumirpc.CreateResponse, error) {
	if err := checkType(req.GetUrn()); err != nil {
		return nil, err
	}
	inputs, err := unmarshal(req.GetProperties())
	if err != nil {
		return nil, err
	}
	// The ID is the resource's name and 8 random hex digits, like the reference's.
	id, err := resource.NewUniqueHex(resource.URN(req.GetUrn()).Name(), 8, 0)
	if err != nil {
		return nil, err
	}
	stdout, stderr := resource.NewStringProperty(""), resource.NewStringProperty("")
	if req.GetPreview() {
		stdout, stderr = unknownString, unknownString
	} else {
		a, err := decodeArgs(inputs)
		if err != nil {
			return nil, err
		}
		if a.Create != nil {
			ctx, done := p.opContext(ctx, req.GetTimeout())
			defer done()
			out, errOut, err := run(ctx, p.spec(ctx, req.GetUrn(), *a.Create, a, inputs, "", ""))
			if err != nil {
				return nil, err
			}
			stdout, stderr = resource.NewStringProperty(out), resource.NewStringProperty(errOut)
		}
	}
	props, err := marshal(outputs(inputs, stdout, stderr))
	if err != nil {
		return nil, err
	}
	return &pulumirpc.CreateResponse{Id: id, Properties: props}, nil
}

// spec assembles a run: log lines go to the engine for this resource, as they are (as
// pulumi-command does: a command must not print its secrets).
func (p *provider) spec(ctx context.Context, urn, command string, a args, inputs resource.PropertyMap,
	prevStdout, prevStderr string,
) runSpec {
	return runSpec{
		command: command, in: a, prevStdout: prevStdout, prevStderr: prevStderr,
		logLine: p.logLine(ctx, urn),
	}
}

// Read (refresh, import) returns the state as it is: a command has nothing to read back, so a
// refresh shows no change (infer's default Read).
func (p *provider) Read(_ context.Context, req *pulumirpc.ReadRequest) (*pulumirpc.ReadResponse, error) {
	if err := checkType(req.GetUrn()); err != nil {
		return nil, err
	}
	return &pulumirpc.ReadResponse{Id: req.GetId(), Properties: req.GetProperties(), Inputs: req.GetInputs()}, nil
}

// Update runs `update`, or `create` when there is no update command, with the new inputs and the
// previous stdout/stderr in PULUMI_COMMAND_STDOUT/STDERR. With neither command the outputs stay.
// During a preview nothing runs and stdout/stderr are unknown when an input changed.
func (p *provider) Update(ctx context.Context, req *pulumirpc.UpdateRequest) (*pulumirpc.UpdateResponse, error) {
	state, news, err := stateAndNews(req.GetUrn(), req.GetOlds(), req.GetNews())
	if err != nil {
		return nil, err
	}
	news = applyIgnoreChanges(news, state, req.GetIgnoreChanges())
	stdout, stderr := state["stdout"], state["stderr"]
	if !stdout.HasValue() {
		stdout = resource.NewStringProperty("")
	}
	if !stderr.HasValue() {
		stderr = resource.NewStringProperty("")
	}

	if req.GetPreview() {
		if news.ContainsUnknowns() || inputsOf(state).Diff(inputsOf(news)) != nil {
			stdout, stderr = unknownString, unknownString
		}
	} else {
		a, err := decodeArgs(news)
		if err != nil {
			return nil, err
		}
		command := a.Create
		if a.Update != nil {
			command = a.Update
		}
		if command != nil {
			prevOut, prevErr := plainString(stdout), plainString(stderr)
			ctx, done := p.opContext(ctx, req.GetTimeout())
			defer done()
			out, errOut, err := run(ctx, p.spec(ctx, req.GetUrn(), *command, a, news, prevOut, prevErr))
			if err != nil {
				return nil, err // the state keeps the previous inputs and outputs
			}
			stdout, stderr = resource.NewStringProperty(out), resource.NewStringProperty(errOut)
		}
	}
	props, err := marshal(outputs(news, stdout, stderr))
	if err != nil {
		return nil, err
	}
	return &pulumirpc.UpdateResponse{Properties: props}, nil
}

// Delete runs `delete` (when set) with the inputs and outputs recorded in the state: the old
// environment, and the last stdout/stderr in PULUMI_COMMAND_STDOUT/STDERR.
func (p *provider) Delete(ctx context.Context, req *pulumirpc.DeleteRequest) (*emptypb.Empty, error) {
	if err := checkType(req.GetUrn()); err != nil {
		return nil, err
	}
	state, err := unmarshal(req.GetProperties())
	if err != nil {
		return nil, err
	}
	a, err := decodeArgs(state)
	if err != nil {
		return nil, err
	}
	if a.Delete != nil {
		ctx, done := p.opContext(ctx, req.GetTimeout())
		defer done()
		spec := p.spec(ctx, req.GetUrn(), *a.Delete, a, state, plainString(state["stdout"]), plainString(state["stderr"]))
		if _, _, err := run(ctx, spec); err != nil {
			return nil, err
		}
	}
	return &emptypb.Empty{}, nil
}

// plainString is the string inside v (secret or not), "" for anything else.
func plainString(v resource.PropertyValue) string {
	if v, known := reveal(v); known && v.IsString() {
		return v.StringValue()
	}
	return ""
}

func sortedKeys(m map[string]bool) []string {
	l := make([]string, 0, len(m))
	for k := range m {
		l = append(l, k)
	}
	sort.Strings(l)
	return l
}
