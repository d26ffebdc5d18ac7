//! The long help of each subcommand (and so its man page): what each column means, and
//! examples. Kept apart so the argument definitions stay readable.

pub const TOP: &str = "\
On a terminal (standard input and output), top is an interactive view refreshed at the daemon's
interval: w picks the window (last interval, 1m, 5m, 1h, 1d, since load), < > sort, r reverses,
/ filters, p pauses, Enter charts the selected program from stored history (1m to all that is
retained; reloads marked), ? lists every key, q leaves. Its table adds AVG LOAD (average since
load), MAP MEM and OWNER. Piped, with --json or --once, top prints the table below.

Columns:
  ID          kernel program id (\"(gone)\": unloaded since)
  NAME, TYPE  full name (from BTF when the kernel's 15 bytes cut it) and program type
  RUNS, RUN TIME  with --sort runs or runtime: the runs or run time in the window (ranked on)
  RUNS/S      runs per second while the program was observed in the window (- when seen by
              one pass only: no interval yet)
  AVG         average run time per run
  CPU%        run time over the time the program was observed, of one core (100% = one core);
              `~` marks values extrapolated while stats were duty-cycled
  PEAK CPU%   the highest one-pass CPU% in the window
  MAP MEM*    memory of the maps the program uses (see the footnote; - once unloaded)
  HOLDERS     processes holding the program: command[pid] and systemd unit
On a terminal the table fits its width: columns are left out (never the one ranked on) and long
names end in …; piped, every value is whole.

Examples:
  ebpfstatctl top                        the interactive view (on a terminal)
  ebpfstatctl top --once                 the 10 costliest programs over the last 5 minutes
  ebpfstatctl top --window 1h --sort runtime -n 20
  ebpfstatctl top --owner bpftrace       only what bpftrace loaded
  ebpfstatctl top --cumulative --sort runs
  ebpfstatctl top --watch --refresh 2s";

pub const COMPARE: &str = "\
A program's identity across reloads is its name and type; each tag (a hash of its code) is a
version. Cost per run is compared on per-step averages from stored history: the change is the
Hodges-Lehmann estimate with its Mann-Whitney 95 % interval (distribution-free, robust to
outlier steps), called significant only when the interval lies beyond +/-5 % and 15 ns per
run (two loads of the same code differ by a few ns). A version is judged once it ran
--min-runs times over --min-seconds, in at least 8 steps with runs (the samples of the test);
both default to the daemon's compare_min_runs and compare_min_time, which its own
comparisons (events) are judged by. Until then the verdict names the version short of that.

Rows:
  per run*         median of the per-step averages; CHANGE is the Hodges-Lehmann estimate
                   (its interval is in the verdict line)
  runs/s, CPU%     over the time each version was observed
  map memory       held by the version's newest load (now, or when it was unloaded)
  verified insns, jited size   the code's size as the verifier and the JIT saw it

A gate for CI: --fail-above PCT exits 3 when the newer version is slower per run by more than
PCT % at 95 % confidence (the low end of the interval above +PCT %), and 0 otherwise (also when
the versions could not be judged yet, which stderr says); 1 is any error, 2 a usage error.

Examples:
  ebpfstatctl compare sys_enter_openat                the two newest versions
  ebpfstatctl compare my_filter --fail-above 10       fail a CI job on a slowdown beyond 10 %
  ebpfstatctl compare my_filter --before 1a2b --after 9f8e
  ebpfstatctl compare my_filter --after series:42 --json";

pub const PROFILE: &str = "\
The kernel counts only sums (run time, runs): a program whose every 20th run takes a slow path
looks fine on average. profile attaches fentry and fexit programs to the program's function
(BPF trampolines, no compiler needed) and times every run for --for, then detaches: sooner if
this command is interrupted, or once the tracing has cost the daemon's stats budget (a share of
one core; a program run a million times a second is traced for a fraction of a second).

Shown: runs traced, p50 p90 p99 p99.9 max and mean, the histogram by powers of two (the JSON
has the daemon's finer buckets, each at most 1/16 of its value wide), what the tracing added to
each run and what it records of an empty program (its own part of every duration; both measured
on this machine, within the last 10 minutes), and the kernel's run count over the same time.

Needs the program's BTF (programs loaded by libbpf, aya, cilium/ebpf carry it; bpftrace before
0.18 does not) and a kernel with BPF trampolines (Linux 5.5 on x86_64, 6.0 on arm64; none on
32-bit ARM): otherwise it says so.

Examples:
  ebpfstatctl profile my_filter                  10 seconds
  ebpfstatctl profile 42 --for 1m --json";

pub const EVENTS: &str = "\
The daemon compares each new version of a program (a new tag under the same name and type)
with the version before, once the new one has run compare_min_runs times over
compare_min_time (its configuration; 1000 runs and 1 minute by default), and keeps the
verdict: the newest 1000, across restarts. `ebpfstatctl compare NAME` shows the same
comparison in full, judged by the same needs.

Columns:
  TIME        when the daemon concluded
  KIND        version: a new version compared with the one before; unclean_stop: a start
              that found the daemon's previous run had not stopped in order
  WHAT        the verdict: slower, faster or no significant change per run, with the 95 %
              interval, or why it could not be judged (the version before ran too little)

Examples:
  ebpfstatctl events                        the last 7 days
  ebpfstatctl events --since 1h
  ebpfstatctl events --since 2026-12-01T00:00:00Z
  ebpfstatctl --json events                 with the tags and ratios, for scripts";

pub const HISTORY: &str = "\
Columns:
  TIME        start of the step
  SAMPLES     passes in the step (0: nothing was seen; its values show as -); `*`: a pass came
              late or passes failed, and the step's counts cover the whole gap
  RUNS, RUN TIME, AVG  what the program did in the step
  CPU%        run time over the time the step's samples cover, of one core
  PEAK CPU%   the highest one-pass CPU% in the step
Only the time the program was seen is shown: from its first sample to its last.

Examples:
  ebpfstatctl history sys_enter_openat              the last 6 hours at 1 minute
  ebpfstatctl history 42 --since 1h --step 10s --metric runs
  ebpfstatctl history cil_from --since 7d --step 1h   any unambiguous start of a name
  ebpfstatctl history series:17 --cumulative";

pub const LIST: &str = "\
Columns:
  ID, NAME, TYPE  as in top
  RUNS        runs since the program was loaded
  RUNS/S, AVG, CPU%  over the last interval between two passes (- before a second pass)
  MAP MEM*    memory of the maps it uses
  HOLDERS     processes holding it

Examples:
  ebpfstatctl list
  ebpfstatctl list --type tracepoint --name 'sys_enter_*'
  ebpfstatctl list --unit 'cilium*'";

pub const MAPS: &str = "\
Columns:
  ID, NAME, TYPE, KEY, VALUE, ENTRIES, FLAGS  as the kernel reports them
  MEMORY*     the map's memory (see the footnotes; extra stars point at caveats on that row)
  PROGS       live programs using the map
  HOLDERS     processes holding it: a map fd, or a program using it
The last line totals the memory, each map once.

Examples:
  ebpfstatctl maps
  ebpfstatctl maps --owner bpftrace
  ebpfstatctl --exact maps --type hash";

pub const SHOW: &str = "\
Everything about one loaded program, with exact numbers: metadata, maps, holders, pins, attach
points and the notes that apply. A program no longer loaded has a history instead.

Examples:
  ebpfstatctl show 42
  ebpfstatctl show sys_enter_openat";

pub const ALERTS: &str = "\
Rules live in the daemon's configuration file, as [[alert]] tables (see the README): a
metric (cpu_pct, avg_ns, runs_per_sec, map_memory per program; total_cpu_pct and
stats_overhead_pct for the host; map_fill_pct per map), a threshold it must stay above for `for`, and the level
at or below which it clears. The daemon judges them after each pass; this lists what is
raised now with its newest value, then what was raised and cleared (the daemon keeps the
newest 1000 changes, across restarts).

Columns of the alerts raised now:
  RULE, METRIC  the rule's name and what it watches
  SUBJECT (ID)  the program's full name and id; map NAME (ID) for map_fill_pct; (host) for a
                host-wide rule
  NOW           the newest value
  ABOVE         the threshold: raised when the value stayed above it for the rule's `for`
  CLEARS AT     cleared when the value is at or below this
  RAISED        how long ago it was raised (the time is in the changes below)
An avg_ns alert keeps its state through intervals without runs: they say nothing about the
cost of a run.

Examples:
  ebpfstatctl alerts
  ebpfstatctl alerts --since 7d
  ebpfstatctl --json alerts --since 1h";

pub const STATUS: &str = "\
Lines: the stats state and what stats cost; sampling (passes, late, failed, not stored); the
database against its cap; the series kept; writes; each tier's span; the daemon's own CPU and
memory.

Examples:
  ebpfstatctl status
  ebpfstatctl --json status";

pub const EXPORT: &str = "\
Writes the runs and run-time counters of every stored program (or those the filters keep)
over the range, one sample per step, as OpenMetrics with time stamps. Counters are the
program's values since load, as a live scrape reads them, and each series starts with its
value at the start of its first step with data: the last value minus the first is the stored
runs.

The daemon sends it a page at a time and this writes each page as it comes: memory stays
bounded on both sides, whatever the range.

Examples:
  ebpfstatctl export --since 7d --step 1m > ebpfstat.om
  promtool tsdb create-blocks-from openmetrics ebpfstat.om /var/lib/prometheus/metrics2
  curl --data-binary @ebpfstat.om http://vm:8428/api/v1/import/prometheus";
