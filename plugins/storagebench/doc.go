// Package storagebench measures storage key layouts for direct messages
// before the storage plugin switches to one (issue 14). It has no code of
// its own outside its tests: BenchmarkLayout (layout_test.go) drives three
// candidates with the workload of sqlitestore's BenchmarkWriteMixed, in
// batches of 256 committed with fsync:
//
//   - A: today's store, plugins/sqlite/sqlitestore, through its real Write;
//   - B: a reworked SQLite schema whose keys append (a prototype, same
//     driver and pragmas as sqlitestore);
//   - C: Pebble with the key layout of the issue (a prototype).
//
// The benchmark is skipped unless QQ_LAYOUT_MESSAGES is set, so that
// go test ./... stays fast. Build the test binary first, then run it
// pinned to one core, for example:
//
//	go test -c -o /tmp/storagebench.test ./plugins/storagebench
//	QQ_LAYOUT_MESSAGES=1000000 taskset -c 1 /tmp/storagebench.test \
//		-test.run '^$' -test.bench Layout -test.benchtime 1x -test.timeout 0
//
// The environment variables (see layoutConfig in layout_test.go):
// QQ_LAYOUT_MESSAGES, messages preloaded into each candidate;
// QQ_LAYOUT_MEASURE, messages written per candidate and round (200,000);
// QQ_LAYOUT_ROUNDS, rounds (3), each running every candidate in turn;
// QQ_LAYOUT_CANDIDATES, which ones ("A,B,C");
// QQ_LAYOUT_DIR, where the stores go (by default a temporary directory,
// removed at the end); a store preloaded there is kept, with its count of
// stored messages in <candidate>.messages (updated after every round), and
// a later run reuses it instead of preloading (so QQ_LAYOUT_ROUNDS=0
// preloads only);
// QQ_LAYOUT_CPUPROFILE, a path prefix: a CPU profile of each candidate's
// measured phases per round goes to PREFIX-<candidate>-r<round>.pprof.
//
// TestCandidates checks, on a few thousand messages, that the three do the
// same logical work: de-duplication, history, pending and acks.
package storagebench
