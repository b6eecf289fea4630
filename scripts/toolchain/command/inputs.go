package main

// The inputs of command:local:Command: their names and kinds (from which the schema, Check's
// validation and the outputs are all derived), and their decoding into plain Go values.

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

const commandType = "command:local:Command"

type kind int

const (
	kindString     kind = iota // a string
	kindBool                   // a boolean
	kindStringList             // a list of strings
	kindStringMap              // a map of strings
	kindAnyList                // a list of anything (triggers)
	kindLogging                // one of loggingModes
)

type inputSpec struct {
	name string
	kind kind
}

// inputSpecs are the input properties of pulumi-command 1.2.1's local:Command (schema.json,
// provider/pkg/provider/common/inputs.go ResourceInputs and local/base.go BaseInputs), in the
// schema's order. Every one of them is also an output (CommandOutputs embeds CommandInputs).
var inputSpecs = []inputSpec{
	{"addPreviousOutputInEnv", kindBool},
	{"archivePaths", kindStringList},
	{"assetPaths", kindStringList},
	{"create", kindString},
	{"delete", kindString},
	{"dir", kindString},
	{"environment", kindStringMap},
	{"interpreter", kindStringList},
	{"logging", kindLogging},
	{"stdin", kindString},
	{"triggers", kindAnyList},
	{"update", kindString},
}

// replaceOnChanges: a change anywhere under these inputs replaces the resource
// (`provider:"replaceOnChanges"` on ResourceInputs.Triggers; the SDK adds "triggers[*]" too).
var replaceOnChanges = map[string]bool{"triggers": true}

// unsupported inputs are refused by Check: pgha does not use them, and returning assets and
// archives is left out of this implementation.
var unsupported = map[string]string{
	"assetPaths":   "the assets output",
	"archivePaths": "the archive output",
}

// loggingModes are the values of the enum command:local:Logging (local/logging.go).
var loggingModes = []string{"stdout", "stderr", "stdoutAndStderr", "none"}

func specOf(name string) (inputSpec, bool) {
	for _, s := range inputSpecs {
		if s.name == name {
			return s, true
		}
	}
	return inputSpec{}, false
}

// args are the inputs in plain form, as a command runs with them. nil pointers are unset inputs.
type args struct {
	Create, Update, Delete *string
	Dir, Stdin             *string
	Environment            map[string]string
	Interpreter            []string
	Logging                string // "" when unset: both streams are logged
	AddPreviousOutputInEnv *bool  // nil when unset: true
}

// logsStdout and logsStderr: which streams go to the engine's log while the command runs
// (local/logging.go ShouldLogStdout/ShouldLogStderr: unset logs both).
func (a args) logsStdout() bool {
	return a.Logging == "" || a.Logging == "stdout" || a.Logging == "stdoutAndStderr"
}
func (a args) logsStderr() bool {
	return a.Logging == "" || a.Logging == "stderr" || a.Logging == "stdoutAndStderr"
}

// addPreviousOutput: PULUMI_COMMAND_STDOUT/STDERR are given to the command (default true).
func (a args) addPreviousOutput() bool {
	return a.AddPreviousOutputInEnv == nil || *a.AddPreviousOutputInEnv
}

// isUnknown: a value not known yet (only during previews).
func isUnknown(v resource.PropertyValue) bool {
	return v.IsComputed() || (v.IsOutput() && !v.OutputValue().Known)
}

// unwrap removes secret (and known output) wrappers around a value, not inside it.
func unwrap(v resource.PropertyValue) resource.PropertyValue {
	for {
		switch {
		case v.IsSecret():
			v = v.SecretValue().Element
		case v.IsOutput() && v.OutputValue().Known:
			v = v.OutputValue().Element
		default:
			return v
		}
	}
}

// checkValue says what is wrong with v as an input of kind k ("" if nothing). Unknown values
// pass: they are checked again when known.
func checkValue(k kind, v resource.PropertyValue) string {
	v = unwrap(v)
	if isUnknown(v) {
		return ""
	}
	elements := func(what string, ok func(resource.PropertyValue) bool) string {
		var vals []resource.PropertyValue
		switch {
		case k == kindStringMap && v.IsObject():
			for _, e := range v.ObjectValue() {
				vals = append(vals, e)
			}
		case k != kindStringMap && v.IsArray():
			vals = v.ArrayValue()
		default:
			return "must be " + what
		}
		for _, e := range vals {
			if e = unwrap(e); !isUnknown(e) && !ok(e) {
				return "must be " + what
			}
		}
		return ""
	}
	isString := func(e resource.PropertyValue) bool { return e.IsString() }
	switch k {
	case kindString:
		if !v.IsString() {
			return "must be a string"
		}
	case kindBool:
		if !v.IsBool() {
			return "must be a boolean"
		}
	case kindLogging:
		if !v.IsString() || !slices.Contains(loggingModes, v.StringValue()) {
			return "must be one of " + strings.Join(loggingModes, ", ")
		}
	case kindStringList:
		return elements("a list of strings", isString)
	case kindStringMap:
		return elements("a map of strings", isString)
	case kindAnyList:
		return elements("a list", func(resource.PropertyValue) bool { return true })
	}
	return ""
}

// checkInputs is Check's validation: the names and kinds of the inputs, and the inputs refused.
func checkInputs(m resource.PropertyMap) []failure {
	var fs []failure
	for _, key := range m.StableKeys() {
		name := string(key)
		if strings.HasPrefix(name, "__") {
			continue // internal keys of the engine or SDK
		}
		spec, ok := specOf(name)
		if !ok {
			fs = append(fs, failure{name, "is not an input of " + commandType})
			continue
		}
		if what, refused := unsupported[name]; refused {
			fs = append(fs, failure{name, fmt.Sprintf(
				"is not supported by pgha's command provider (it does not implement %s); remove %s", what, name)})
			continue
		}
		if reason := checkValue(spec.kind, m[key]); reason != "" {
			fs = append(fs, failure{name, reason})
		}
	}
	return fs
}

type failure struct{ property, reason string }

// decodeArgs reads the inputs found in m (inputs, or a state that holds them) into plain values.
// Keys that are not inputs (stdout, stderr...) are ignored. Unknown values are an error: a
// command runs only outside previews, when every input is known.
func decodeArgs(m resource.PropertyMap) (args, error) {
	var a args
	for _, spec := range inputSpecs {
		raw, ok := m[resource.PropertyKey(spec.name)]
		if !ok {
			continue
		}
		v, known := reveal(raw)
		if !known {
			return a, fmt.Errorf("input %s is not known", spec.name)
		}
		if v.IsNull() {
			continue
		}
		if reason := checkValue(spec.kind, v); reason != "" {
			return a, fmt.Errorf("input %s %s", spec.name, reason)
		}
		str := func() *string { s := v.StringValue(); return &s }
		strs := func() []string {
			var l []string
			for _, e := range v.ArrayValue() {
				l = append(l, e.StringValue())
			}
			return l
		}
		switch spec.name {
		case "create":
			a.Create = str()
		case "update":
			a.Update = str()
		case "delete":
			a.Delete = str()
		case "dir":
			a.Dir = str()
		case "stdin":
			a.Stdin = str()
		case "logging":
			a.Logging = v.StringValue()
		case "interpreter":
			a.Interpreter = strs()
		case "addPreviousOutputInEnv":
			b := v.BoolValue()
			a.AddPreviousOutputInEnv = &b
		case "environment":
			a.Environment = map[string]string{}
			for k, e := range v.ObjectValue() {
				a.Environment[string(k)] = e.StringValue()
			}
		}
	}
	return a, nil
}

// reveal returns v with every secret wrapper removed, at any depth; known is false if v holds
// an unknown value anywhere.
func reveal(v resource.PropertyValue) (out resource.PropertyValue, known bool) {
	v = unwrap(v)
	switch {
	case isUnknown(v):
		return v, false
	case v.IsArray():
		l := make([]resource.PropertyValue, len(v.ArrayValue()))
		for i, e := range v.ArrayValue() {
			if l[i], known = reveal(e); !known {
				return v, false
			}
		}
		return resource.NewArrayProperty(l), true
	case v.IsObject():
		m := resource.PropertyMap{}
		for k, e := range v.ObjectValue() {
			if m[k], known = reveal(e); !known {
				return v, false
			}
		}
		return resource.NewObjectProperty(m), true
	}
	return v, true
}

// inputsOf is the part of m (inputs or state) that are inputs, values as they are (secret
// wrappers kept).
func inputsOf(m resource.PropertyMap) resource.PropertyMap {
	in := resource.PropertyMap{}
	for _, spec := range inputSpecs {
		if v, ok := m[resource.PropertyKey(spec.name)]; ok {
			in[resource.PropertyKey(spec.name)] = v
		}
	}
	return in
}
