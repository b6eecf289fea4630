package main

// The package schema GetSchema serves: the part of pulumi-command 1.2.1's schema that this
// plugin implements (command:local:Command and its enum command:local:Logging), with the same
// property names and types. remote:Command, remote:CopyToRemote, remote:CopyFile and the
// function local:run are left out: pgha does not use them.

import "encoding/json"

type obj = map[string]any

func propertyType(k kind) obj {
	str := obj{"type": "string"}
	switch k {
	case kindBool:
		return obj{"type": "boolean"}
	case kindStringList:
		return obj{"type": "array", "items": str}
	case kindStringMap:
		return obj{"type": "object", "additionalProperties": str}
	case kindAnyList:
		return obj{"type": "array", "items": obj{"$ref": "pulumi.json#/Any"}}
	case kindLogging:
		return obj{"$ref": "#/types/command:local:Logging"}
	}
	return str
}

// schema builds the package schema as a JSON-shaped value.
func schema(version string) obj {
	inputs, props := obj{}, obj{}
	for _, s := range inputSpecs {
		t := propertyType(s.kind)
		if replaceOnChanges[s.name] {
			t["replaceOnChanges"] = true
		}
		inputs[s.name], props[s.name] = t, t
	}
	props["stdout"] = obj{"type": "string", "description": "The standard output of the command's process."}
	props["stderr"] = obj{"type": "string", "description": "The standard error of the command's process."}
	// Declared for the SDK's sake; never set, since assetPaths and archivePaths are refused.
	props["assets"] = obj{"type": "object", "additionalProperties": obj{"$ref": "pulumi.json#/Asset"}}
	props["archive"] = obj{"$ref": "pulumi.json#/Archive"}

	var enum []obj
	for _, m := range loggingModes {
		enum = append(enum, obj{"value": m})
	}
	return obj{
		"name":        "command",
		"version":     version,
		"displayName": "Command",
		"description": "pgha's implementation of the Pulumi Command provider's local:Command.",
		"config":      obj{},
		"provider":    obj{},
		"resources": obj{
			commandType: obj{
				"description": "A local command, run on create, update and delete " +
					"(/bin/sh -c unless interpreter is set).",
				"properties":      props,
				"required":        []string{"stdout", "stderr"},
				"inputProperties": inputs,
			},
		},
		"types": obj{
			"command:local:Logging": obj{"type": "string", "enum": enum},
		},
	}
}

func schemaJSON(version string) (string, error) {
	b, err := json.Marshal(schema(version))
	return string(b), err
}
