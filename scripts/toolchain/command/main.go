// pulumi-resource-command: pgha's own implementation of the Pulumi resource plugin "command",
// serving the one resource pgha declares, command:local:Command, so that the unchanged npm SDK
// @pulumi/command talks to it. The schema (names and types of inputs and outputs) and the
// documented behaviour are those of pulumi-command 1.2.1; the code is pgha's (README.md beside
// this file lists what was checked against the reference and what is left out).
//
// Protocol: the engine starts a plugin as
//
//	pulumi-resource-command [--logtostderr] [-v=N] [--tracing URL] ENGINE_ADDRESS
//
// in the program's directory; the plugin serves the ResourceProvider gRPC service on a free
// loopback port, prints that port on stdout, and uses ENGINE_ADDRESS to send log messages.
// Started without an address it serves all the same (for debugging: `pulumi` attach mode).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
)

// version is what GetPluginInfo and the schema report; build.sh sets it with -ldflags -X.
var version = "1.2.1"

func main() {
	if err := serve(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-resource-command: %v\n", err)
		os.Exit(1)
	}
}

// engineAddress picks the engine's address out of the plugin's arguments. The logging and
// tracing flags the engine may pass are accepted and ignored (this plugin logs through the
// engine only).
func engineAddress(args []string) (string, error) {
	var positional []string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--tracing" || a == "-tracing":
			i++ // skip its value
		case strings.HasPrefix(a, "-"):
		default:
			positional = append(positional, a)
		}
	}
	if len(positional) > 1 {
		return "", fmt.Errorf("expected at most one argument, the engine's address; got %q", positional)
	}
	if len(positional) == 1 {
		return positional[0], nil
	}
	return "", nil
}

func serve(args []string) error {
	addr, err := engineAddress(args)
	if err != nil {
		return err
	}
	// The engine stops a plugin with SIGINT; stop serving then, or when the engine is gone.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	prov := newProvider(version)
	if addr != "" {
		if err := prov.attachEngine(addr); err != nil {
			return fmt.Errorf("connecting to the engine at %s: %w", addr, err)
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		if err := rpcutil.Healthcheck(ctx, addr, 5*time.Minute, cancel); err != nil {
			return fmt.Errorf("health check of the engine: %w", err)
		}
	}

	done := make(chan bool)
	go func() { <-ctx.Done(); close(done) }()
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: done,
		Init: func(s *grpc.Server) error {
			pulumirpc.RegisterResourceProviderServer(s, prov)
			return nil
		},
	})
	if err != nil {
		return err
	}
	// The plugin protocol: the first line on stdout is the port.
	fmt.Printf("%d\n", handle.Port)
	return <-handle.Done
}
