// Package libcompare benchmarks Rampart's resilience primitives side by side
// with the libraries users compare them to. It is its own module so that the
// main module carries none of these dependencies. Run it with `make bench`.
package libcompare
