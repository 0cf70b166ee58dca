// Package config is the gateway's configuration: strict YAML decoding with
// line numbers, defaults, validation and a normalized form.
//
// The lifecycle is decode → defaults → validate → normalized Config:
//
//	cfg, err := config.Load("rampart.yaml")
//	var errs *config.Errors
//	if errors.As(err, &errs) {
//		for _, e := range errs.List {
//			fmt.Println(e) // clusters[1].endpoints[0].address: missing port (line 14)
//		}
//	}
//
// Decoding is strict: an unknown key, a duplicate key or a value of the wrong
// type is an error that names its path and line, and Parse reports every
// error it finds, not just the first.
//
// Defaults follow one rule: a key left out of the YAML takes its documented
// default; a key that is written means exactly what it says, and for
// durations, sizes and counts 0 means "none" or "unlimited" (as
// documented on each field). So "timeout: 0s" turns a route's timeout off
// while leaving the key out gives the 15s default. A Config returned by Parse
// is normalized: every default is filled in, so the gateway reads final
// values and never applies defaults of its own, and Marshal of it is the
// normalized YAML, which Parse maps back to an equal Config.
//
// Configs built in Go should start from Default, NewListener, NewRoute and
// NewCluster, which fill the same defaults, and be checked with
// Config.Validate.
//
// A Config is a plain value: nothing in this package mutates a Config after
// returning it, and concurrent reads are safe.
package config
