package storagebench

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// message is one direct message of the workload.
type message struct {
	from, to, body, cid string
}

// result is what a candidate answers for a message: its id (sqlitestore's
// msg_id; the prototypes' ids are their seq in decimal), its seq (0 for
// sqlitestore, whose acks go by msg_id) and whether it was a duplicate of a
// stored one (then id and seq are the stored message's).
type result struct {
	id        string
	seq       uint64
	duplicate bool
}

// ack acks one message of user.
type ack struct {
	user string
	id   string
	seq  uint64
}

// candidate is a storage layout under test: the write path of a storage
// for direct messages and the two page reads.
type candidate interface {
	// write stores msgs (de-duplicated by (from, cid)) and applies acks,
	// in one commit, with fsync when sync is set.
	write(msgs []message, acks []ack, sync bool) ([]result, error)
	// history returns the ids of the limit newest messages between a and
	// b, oldest first (as sqlitestore's History pages).
	history(a, b string, limit int) ([]string, error)
	// pending returns the ids of the limit oldest messages pending for
	// user, oldest first.
	pending(user string, limit int) ([]string, error)
	// settle finishes the work a store defers: a WAL checkpoint, or a
	// memtable flush and the compactions it triggers.
	settle() error
	close() error
}

// opener opens (or reopens) a candidate's store in dir.
type opener func(dir string) (candidate, error)

// candidates are the layouts, by letter.
var candidates = map[string]opener{
	"A": openSQLiteStore,
	"B": openSQLiteAppend,
	"C": openPebble,
}

const (
	users = 1000
	// offline is how many users (the last ones) never ack: their pending
	// messages are what the pending reads page through. 1% of messages.
	offline = 10
	// retryPercent is the share of messages that are retries of a
	// message of the batch before (a de-duplication hit).
	retryPercent = 1
	// measureBatch is the size of the measured batches.
	measureBatch = 256
	// preloadBatch is the size of the preload's batches (no fsync).
	preloadBatch = 4096
	// historyPage and pendingPage are the read page sizes.
	historyPage, pendingPage = 50, 100
	// reads is how many reads of each kind a round times.
	reads = 1000
	// bodyLen is the length of a message's body, as in
	// BenchmarkWriteMixed.
	bodyLen = 100
)

func userName(u int) string { return "u" + strconv.Itoa(u) }

// workload makes the batches of BenchmarkWriteMixed: messages between
// random pairs of users, each batch acking the messages of the batch
// before it (but those to offline users), plus retries.
type workload struct {
	rng  *rand.Rand
	run  string
	n    int // batches made
	prev []message
	acks []ack
}

func newWorkload(seed uint64) *workload {
	return &workload{
		rng: rand.New(rand.NewPCG(seed, 2)),
		run: strconv.FormatInt(time.Now().UnixNano(), 36),
	}
}

// next returns the next batch of n messages and the acks that go with it.
func (w *workload) next(n int) ([]message, []ack) {
	msgs := make([]message, n)
	for j := range msgs {
		if len(w.prev) > 0 && w.rng.IntN(100) < retryPercent {
			msgs[j] = w.prev[w.rng.IntN(len(w.prev))]
			continue
		}
		from := w.rng.IntN(users)
		to := w.rng.IntN(users - 1)
		if to >= from {
			to++
		}
		msgs[j] = message{from: userName(from), to: userName(to), body: w.text(bodyLen),
			cid: "c" + w.run + "-" + strconv.Itoa(w.n) + "-" + strconv.Itoa(j)}
	}
	w.n++
	return msgs, w.acks
}

// text returns n characters of random lowercase words: a body that
// compresses about as well as chat text (BenchmarkWriteMixed's 100 x's
// would compress to nothing in Pebble's blocks and flatter its size).
func (w *workload) text(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz      "
	b := make([]byte, n)
	var r uint64
	for i := range b {
		if i%12 == 0 {
			r = w.rng.Uint64()
		}
		b[i] = alphabet[r&31]
		r >>= 5
	}
	return string(b)
}

// done takes the results of the batch next returned: the new messages
// to online users are acked with the next batch.
func (w *workload) done(msgs []message, res []result) error {
	if len(res) != len(msgs) {
		return fmt.Errorf("%d results for %d messages", len(res), len(msgs))
	}
	w.acks = w.acks[:0]
	for j, r := range res {
		if r.duplicate {
			continue
		}
		if u, _ := strconv.Atoi(msgs[j].to[1:]); u >= users-offline {
			continue
		}
		w.acks = append(w.acks, ack{user: msgs[j].to, id: r.id, seq: r.seq})
	}
	w.prev = msgs
	return nil
}

// layoutConfig is the benchmark's configuration, from the environment.
type layoutConfig struct {
	preload, measure, rounds int
	candidates               []string
	dir, profile             string
}

func configFromEnv() (layoutConfig, bool, error) {
	c := layoutConfig{measure: 200_000, rounds: 3, candidates: []string{"A", "B", "C"},
		dir: os.Getenv("QQ_LAYOUT_DIR"), profile: os.Getenv("QQ_LAYOUT_CPUPROFILE")}
	v := os.Getenv("QQ_LAYOUT_MESSAGES")
	if v == "" {
		return c, false, nil
	}
	for _, e := range []struct {
		name string
		dst  *int
	}{{"QQ_LAYOUT_MESSAGES", &c.preload}, {"QQ_LAYOUT_MEASURE", &c.measure}, {"QQ_LAYOUT_ROUNDS", &c.rounds}} {
		s := os.Getenv(e.name)
		if s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return c, false, fmt.Errorf("%s=%q: want a count", e.name, s)
		}
		*e.dst = n
	}
	if s := os.Getenv("QQ_LAYOUT_CANDIDATES"); s != "" {
		c.candidates = strings.Split(s, ",")
	}
	for _, k := range c.candidates {
		if candidates[k] == nil {
			return c, false, fmt.Errorf("QQ_LAYOUT_CANDIDATES: no candidate %q", k)
		}
	}
	return c, true, nil
}

// roundResult is one candidate's figures in one round.
type roundResult struct {
	cpuWrite, cpuSettle, wall          time.Duration // per message
	diskPerMsg, dataPerMsg             float64       // bytes on disk per stored message, and without the WALs
	histP50, histP99, pendP50, pendP99 time.Duration
}

// BenchmarkLayout preloads QQ_LAYOUT_MESSAGES messages into each
// candidate, then runs QQ_LAYOUT_ROUNDS rounds: in each, every candidate
// in turn (A B C A B C ...) writes QQ_LAYOUT_MEASURE messages in batches
// of 256 with fsync, settles (a WAL checkpoint; a memtable flush and the
// compactions that follow), and times 1,000 history reads (50 newest of
// a random conversation) and 1,000 pending reads (100 oldest of an
// offline user). CPU is getrusage(RUSAGE_SELF) user+sys, which counts
// Pebble's compactions (goroutines of this process). See the package
// documentation for how to run it.
func BenchmarkLayout(b *testing.B) {
	cfg, ok, err := configFromEnv()
	if err != nil {
		b.Fatal(err)
	}
	if !ok {
		b.Skip("set QQ_LAYOUT_MESSAGES to run (see the package documentation)")
	}
	if cfg.dir == "" {
		cfg.dir = b.TempDir()
	}
	progress("loadavg %s", loadavg())
	stores := make(map[string]candidate)
	dirs := make(map[string]string)
	stored := make(map[string]int)
	wls := make(map[string]*workload)
	defer func() {
		for k, s := range stores {
			if err := s.close(); err != nil {
				b.Errorf("close %s: %v", k, err)
			}
		}
	}()
	for i, k := range cfg.candidates {
		dirs[k] = filepath.Join(cfg.dir, k)
		if err := os.MkdirAll(dirs[k], 0o755); err != nil {
			b.Fatal(err)
		}
		s, err := candidates[k](dirs[k])
		if err != nil {
			b.Fatalf("open %s: %v", k, err)
		}
		stores[k] = s
		wls[k] = newWorkload(uint64(i + 1))
		countFile := filepath.Join(cfg.dir, k+".messages")
		if v, err := os.ReadFile(countFile); err == nil {
			if stored[k], err = strconv.Atoi(strings.TrimSpace(string(v))); err != nil {
				b.Fatalf("%s: %v", countFile, err)
			}
			progress("%s: reusing %d preloaded messages in %s", k, stored[k], dirs[k])
			continue
		}
		start, cpu0 := time.Now(), cpuTime()
		n, err := drive(s, wls[k], cfg.preload, preloadBatch, false)
		if err != nil {
			b.Fatalf("preload %s: %v", k, err)
		}
		// The last batch's acks, so that nothing but the offline users'
		// messages is pending.
		if _, err := s.write(nil, wls[k].acks, false); err != nil {
			b.Fatalf("preload %s: %v", k, err)
		}
		wls[k].acks, wls[k].prev = nil, nil
		stored[k] += n
		if err := s.settle(); err != nil {
			b.Fatalf("settle %s: %v", k, err)
		}
		total, wal := diskBytes(dirs[k])
		progress("%s preloaded %d messages in %v (cpu %v), %s on disk (%s of it WAL)", k, n,
			time.Since(start).Round(time.Second), (cpuTime() - cpu0).Round(time.Second), bytesString(total), bytesString(wal))
		if d, ok := s.(fmt.Stringer); ok {
			progress("%s after the preload:\n%s", k, d)
		}
		if os.Getenv("QQ_LAYOUT_DIR") != "" {
			if err := os.WriteFile(countFile, []byte(strconv.Itoa(stored[k])), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	progress("loadavg %s", loadavg())
	results := make(map[string][]roundResult)
	for round := range cfg.rounds {
		for _, k := range cfg.candidates {
			r, n, err := measure(stores[k], wls[k], cfg, k, round)
			if err != nil {
				b.Fatalf("round %d, %s: %v", round, k, err)
			}
			stored[k] += n
			total, wal := diskBytes(dirs[k])
			r.diskPerMsg = float64(total) / float64(stored[k])
			r.dataPerMsg = float64(total-wal) / float64(stored[k])
			results[k] = append(results[k], r)
			if os.Getenv("QQ_LAYOUT_DIR") != "" {
				if err := os.WriteFile(filepath.Join(cfg.dir, k+".messages"), []byte(strconv.Itoa(stored[k])), 0o644); err != nil {
					b.Fatal(err)
				}
			}
			progress("round %d %s: cpu %v + settle %v /msg, wall %v/msg, %.0f B/msg (%.0f without WAL), history p50 %v p99 %v, pending p50 %v p99 %v",
				round, k, r.cpuWrite, r.cpuSettle, r.wall, r.diskPerMsg, r.dataPerMsg, r.histP50, r.histP99, r.pendP50, r.pendP99)
		}
	}
	for _, k := range cfg.candidates {
		if d, ok := stores[k].(fmt.Stringer); ok && cfg.rounds > 0 {
			progress("%s at the end:\n%s", k, d)
		}
	}
	progress("loadavg %s", loadavg())
	if cfg.rounds > 0 {
		b.Log("\n" + table(cfg, results, stored))
	}
}

// measure runs one round of candidate k.
func measure(s candidate, w *workload, cfg layoutConfig, k string, round int) (roundResult, int, error) {
	var r roundResult
	if cfg.profile != "" {
		f, err := os.Create(fmt.Sprintf("%s-%s-r%d.pprof", cfg.profile, k, round))
		if err != nil {
			return r, 0, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return r, 0, err
		}
	}
	start, cpu0 := time.Now(), cpuTime()
	n, err := drive(s, w, cfg.measure, measureBatch, true)
	if err != nil {
		pprof.StopCPUProfile()
		return r, 0, err
	}
	wall, cpu1 := time.Since(start), cpuTime()
	err = s.settle()
	cpu2 := cpuTime()
	if cfg.profile != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return r, 0, err
	}
	per := func(d time.Duration) time.Duration { return d / time.Duration(max(cfg.measure, 1)) }
	r.wall, r.cpuWrite, r.cpuSettle = per(wall), per(cpu1-cpu0), per(cpu2-cpu1)

	rng := rand.New(rand.NewPCG(uint64(round), 3))
	hist := make([]time.Duration, reads)
	pend := make([]time.Duration, reads)
	for i := range reads {
		a := rng.IntN(users)
		bb := rng.IntN(users - 1)
		if bb >= a {
			bb++
		}
		t0 := time.Now()
		if _, err := s.history(userName(a), userName(bb), historyPage); err != nil {
			return r, 0, fmt.Errorf("history: %w", err)
		}
		hist[i] = time.Since(t0)
		t0 = time.Now()
		if _, err := s.pending(userName(users-offline+rng.IntN(offline)), pendingPage); err != nil {
			return r, 0, fmt.Errorf("pending: %w", err)
		}
		pend[i] = time.Since(t0)
	}
	r.histP50, r.histP99 = quantile(hist, 0.5), quantile(hist, 0.99)
	r.pendP50, r.pendP99 = quantile(pend, 0.5), quantile(pend, 0.99)
	return r, n, nil
}

// drive writes n messages of w into s in batches of size batch and
// returns how many were new.
func drive(s candidate, w *workload, n, batch int, sync bool) (int, error) {
	stored := 0
	for done := 0; done < n; done += batch {
		msgs, acks := w.next(min(batch, n-done))
		res, err := s.write(msgs, acks, sync)
		if err != nil {
			return stored, err
		}
		if err := w.done(msgs, res); err != nil {
			return stored, err
		}
		for _, r := range res {
			if !r.duplicate {
				stored++
			}
		}
	}
	return stored, nil
}

// table renders the results: per candidate, the median and (min–max) of
// each figure over the rounds.
func table(cfg layoutConfig, results map[string][]roundResult, stored map[string]int) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "preload %d, measured %d per round, %d rounds, batches of %d with fsync\n\n",
		cfg.preload, cfg.measure, cfg.rounds, measureBatch)
	sb.WriteString("| candidate | stored at end | CPU µs/msg (write+settle) | CPU µs/msg write | CPU µs/msg settle | wall µs/msg | disk B/msg | without WAL | history p50 µs | history p99 µs | pending p50 µs | pending p99 µs |\n")
	sb.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, k := range cfg.candidates {
		rs := results[k]
		us := func(f func(roundResult) time.Duration) string {
			return cell(rs, func(r roundResult) float64 { return float64(f(r)) / 1e3 }, 1)
		}
		fmt.Fprintf(&sb, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", k, stored[k],
			us(func(r roundResult) time.Duration { return r.cpuWrite + r.cpuSettle }),
			us(func(r roundResult) time.Duration { return r.cpuWrite }),
			us(func(r roundResult) time.Duration { return r.cpuSettle }),
			us(func(r roundResult) time.Duration { return r.wall }),
			cell(rs, func(r roundResult) float64 { return r.diskPerMsg }, 0),
			cell(rs, func(r roundResult) float64 { return r.dataPerMsg }, 0),
			us(func(r roundResult) time.Duration { return r.histP50 }),
			us(func(r roundResult) time.Duration { return r.histP99 }),
			us(func(r roundResult) time.Duration { return r.pendP50 }),
			us(func(r roundResult) time.Duration { return r.pendP99 }))
	}
	return sb.String()
}

// cell is "median (min–max)" of f over rs, with prec decimals.
func cell(rs []roundResult, f func(roundResult) float64, prec int) string {
	if len(rs) == 0 {
		return "-"
	}
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	return fmt.Sprintf("%.*f (%.*f–%.*f)", prec, v[len(v)/2], prec, v[0], prec, v[len(v)-1])
}

// quantile returns the q quantile of d (sorted in place).
func quantile(d []time.Duration, q float64) time.Duration {
	slices.Sort(d)
	return d[min(int(q*float64(len(d))), len(d)-1)]
}

// cpuTime is the user+system CPU time of this process so far, all its
// threads: the writes', the readers', and Pebble's flushes and
// compactions.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(fmt.Sprintf("getrusage: %v", err))
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// diskBytes is the space the files under dir take (allocated blocks),
// and how much of it is write-ahead logs: SQLite's -wal file (kept at up
// to 128 MiB after a checkpoint), Pebble's .log files (recycled).
func diskBytes(dir string) (total, wal int64) {
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		total += st.Blocks * 512
		if strings.HasSuffix(path, "-wal") || strings.HasSuffix(path, ".log") {
			wal += st.Blocks * 512
		}
		return nil
	})
	return total, wal
}

func bytesString(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown: " + err.Error()
	}
	return strings.TrimSpace(string(b))
}

// progress prints a line as the benchmark goes (b.Log prints only at the
// end).
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05")}, args...)...)
}
