// Package gateway is Rampart's HTTP reverse proxy: it matches routes,
// applies limits, picks endpoints through a balancer and sends attempts
// under the route's retry, hedge and timeout policies, built from the
// resilience library, then answers with the upstream's response or a mapped
// error. It also serves the admin API (metrics, health, config, cluster
// state) and reloads its configuration without dropping requests.
//
// A request flows: listener → route match → rate limit → cluster choice
// (splits) → bulkhead and adaptive limit → httputil.ReverseProxy (hop-by-hop
// headers, X-Forwarded-*, upgrades, trailers, streaming) → route transport
// (resiliencehttp: body replay, retries with budget, hedging, per-try
// timeout) → endpoint transport (balancer pick excluding tried endpoints,
// per-endpoint accounting) → upstream. The outcome feeds endpoint state,
// Prometheus metrics and the JSON access log.
//
// Errors become statuses in one place ([classify]): no endpoint or an open
// breaker → 503 with Retry-After; rate limited → 429 with Retry-After;
// overloaded (bulkhead, adaptive limit) → 503; timeout → 504; upstream
// connection or protocol error → 502; client gone → logged as 499.
package gateway
