package cli

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/rampart-ha/rampart/gateway/config"
)

func validateCommand(_ context.Context, args []string, out, errOut io.Writer) int {
	fset := flag.NewFlagSet("validate", flag.ContinueOnError)
	fset.SetOutput(errOut)
	path := fset.String("c", defaultConfigPath, "configuration file to check")
	if code := parseFlags(fset, args); code >= 0 {
		return code
	}
	if _, err := config.Load(*path); err != nil {
		printConfigError(out, err)
		return 1
	}
	fmt.Fprintf(out, "%s: valid\n", *path)
	return 0
}
