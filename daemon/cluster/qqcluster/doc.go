// Command qqcluster runs a qq cluster on loopback for trying cluster mode
// by hand: PostgreSQL, three NATS servers, three qqd nodes (a, b, c) and
// a TCP load balancer in front of them (package clustertest does the
// work).
//
//	qqcluster up -dir D [-lb 127.0.0.1:5190] [-dsn URL] [-clean] [-nodes a,b,c]
//	        [-nats-servers 3] [-standalone] [-config more.yaml]
//	qqcluster down -dir D
//	qqcluster status -dir D
//	qqcluster kill|start|stop -dir D -node b
//	qqcluster nats-stop|nats-start -dir D -nats 1
//	qqcluster pg-stop|pg-start -dir D
//
// up prints every address and runs until SIGINT or SIGTERM (or down),
// then stops everything; it removes nothing of D unless -clean. The other
// commands talk to a running up through its control socket in D.
//
// PostgreSQL: without -dsn, up starts its own through
// plugins/postgres/pgtest, from Debian's postgresql-15 binaries.
package main
