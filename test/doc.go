// Package test holds cross-package tests: policies composed with each other
// here, and end-to-end and chaos scenarios as the gateway arrives.
package test
