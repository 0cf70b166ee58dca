// Package h1wire holds the HTTP/1.1 framing code (RFC 9112) that both the
// server side (gateway/h1server) and the client side (gateway/upstream)
// need: the chunked transfer coding's decoder, with its trailer, and the
// field-line helpers it uses (CanonicalKey, ValidValue, TrimOWS).
//
// Where the two sides differ in policy (how strictly chunk-size lines are
// read, which trailer fields are kept, how they are merged into a
// header), a ChunkedConfig field says which; the protections (the
// framing-overhead allowance of CVE-2023-39326, the trailer size bound)
// apply to both.
package h1wire
