// Package clustertest runs the real components of a qq cluster on
// loopback, for tests and for the qqcluster command: in-process
// nats-server clusters ([StartNATS]), a small TCP load balancer that
// drains nodes whose /readyz fails ([NewLB]), qqd nodes as subprocesses
// ([Node]) and a whole cluster of them ([Up]). Nothing here imports
// package testing, so commands can use it; every component has a Close
// or Stop that releases all it started.
package clustertest
