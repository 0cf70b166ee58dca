// Package e2e holds end-to-end tests of the rampart binary: real upstream
// processes (the test backend of internal/testutil) on loopback ports and
// the gateway started as `rampart run -c <file>`. The chaos tests kill and
// freeze upstreams under load and require zero failed requests for every
// load-balancing policy; others reload the configuration under load, shut
// the gateway down gracefully and run it without a configuration file.
//
// The package has no code of its own besides this documentation; everything
// lives in its tests. They build ./cmd/rampart and the test backend once per
// test binary, talk to 127.0.0.1 only, bound every load run in requests and
// time, and signal only the processes they started.
package e2e
