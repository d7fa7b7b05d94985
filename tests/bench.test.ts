// The benchmark's own arithmetic: parsing pgbench, medians, the plan, and the table (the runs themselves are `bun run bench`).

import { describe, expect, test } from "bun:test";
import { parsePgbench, runPgbench } from "../bench/pgbench.ts";
import { graceFor, parseOptions, planPoints, pointName, PREPARE_UNNAMED_POINTS, samePoint, secondsFor, TPCB_PREPARED, UNIX_POINTS } from "../bench/plan.ts";
import { failedText, markdownTable, median, newPoint, summarise, type PointResult } from "../bench/report.ts";

const PGBENCH_OUT = `pgbench (15.18 (Debian 15.18-0+deb12u1))
transaction type: <builtin: select only>
scaling factor: 10
query mode: extended
number of clients: 100
number of threads: 2
maximum number of tries: 1
duration: 3 s
number of transactions actually processed: 51234
number of failed transactions: 0 (0.000%)
latency average = 5.812 ms
initial connection time = 41.250 ms
tps = 17205.123456 (without initial connection time)
`;

describe("bench", () => {
  test("parsePgbench reads TPS, latency, failures and connection time", () => {
    const r = parsePgbench(PGBENCH_OUT, 0);
    expect(r).toMatchObject({ ok: true, tps: 17205.123456, latencyMs: 5.812, failed: 0, transactions: 51234, connectMs: 41.25 });
    expect(r.error).toBeUndefined();
  });

  test("parsePgbench reports a failed run with pgbench's own error line", () => {
    const r = parsePgbench('pgbench: error: connection to server at "127.0.0.1", port 1 failed: Connection refused\n', 1);
    expect(r.ok).toBe(false);
    expect(r.error).toContain("Connection refused");
    const none = parsePgbench(PGBENCH_OUT.replace("51234", "0").replace(/^tps = .*$/m, "").replace(/^latency average.*$/m, ""), 0);
    expect(none.ok).toBe(false);
    expect(none.error).toContain("no transaction within -T");
  });

  test("medians ignore failed rounds and failures are summed", () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNull();
    const ok = (tps: number, failed = 0) => ({ ok: true, tps, latencyMs: 1000 / tps, failed, transactions: tps, connectMs: 1 });
    const s = summarise([ok(100), { ok: false, tps: null, latencyMs: null, failed: null, transactions: null, connectMs: null, error: "x" }, ok(300, 2), ok(200)]);
    expect(s.status).toBe("ok");
    expect(s.medianTps).toBe(200);
    expect(s.failedTransactions).toBe(2);
  });

  test("the full plan covers every mode at 1, 10, 100 and 1000 clients, TPC-B at 10 and 100, and TPC-B -M prepared at 100", () => {
    const names = planPoints(false).map((p) => `${p.script}/${p.mode}/${p.clients}`);
    expect(names).toHaveLength(15);
    for (const c of [1, 10, 100, 1000]) for (const m of ["simple", "extended", "prepared"]) expect(names).toContain(`select-only/${m}/${c}`);
    expect(names).toContain("tpcb/simple/10");
    expect(names).toContain("tpcb/simple/100");
    expect(names).toContain("tpcb/prepared/100");
    expect(planPoints(true).length).toBeLessThan(8);
  });

  test("every extra target's points are in the full plan, and the quick plan holds some of each; --only-new keeps just those", () => {
    const full = planPoints(false);
    const quick = planPoints(true);
    for (const only of [PREPARE_UNNAMED_POINTS, UNIX_POINTS, [TPCB_PREPARED]]) {
      for (const p of only) expect(full.some((q) => samePoint(p, q))).toBe(true);
      expect(quick.some((q) => only.some((p) => samePoint(p, q)))).toBe(true);
    }
    const fresh = planPoints(false, true).map(pointName);
    expect(fresh).toEqual(["-S simple c=10", "-S extended c=10", "-S simple c=100", "-S extended c=100", "TPC-B prepared c=100"]);
    expect(parseOptions(["--only-new"]).onlyNew).toBe(true);
    // A client stuck past -T costs at most 20 s below 1000 clients.
    expect(graceFor(TPCB_PREPARED)).toBe(20);
    expect(graceFor({ script: "select-only", mode: "simple", clients: 1000 })).toBe(60);
  });

  test("parsePgbench counts clients pgbench aborted, and the run is an error naming them", () => {
    const aborted = PGBENCH_OUT + 'pgbench: error: client 7 script 0 aborted in command 4 query 0: ERROR:  query_wait_timeout\npgbench: error: client 9 script 0 aborted in command 1 query 0: ERROR:  query_wait_timeout\npgbench: fatal: Run was aborted; the above results are incomplete.\n';
    const r = parsePgbench(aborted, 2);
    expect(r).toMatchObject({ ok: false, abortedClients: 2, failed: 0 });
    expect(r.error).toContain("2 clients aborted");
    expect(parsePgbench(PGBENCH_OUT, 0).abortedClients).toBe(0);
  });

  test("options: defaults, workers, and a bad value named with the usage", () => {
    const full = parseOptions([]);
    expect(full).toMatchObject({ quick: false, rounds: 3, workers: [1, 2], idleClients: 10000, auth: "md5" });
    expect(parseOptions(["--quick"])).toMatchObject({ quick: true, rounds: 1, workers: [1] });
    expect([full.ha, parseOptions(["--no-ha"]).ha]).toEqual([true, false]);
    expect(() => parseOptions(["--rounds", "0"])).toThrow(/--rounds must be an integer >= 1/);
    expect(() => parseOptions(["--auth", "trust"])).toThrow(/--auth must be md5 or scram-sha-256/);
    expect(secondsFor({ script: "select-only", mode: "simple", clients: 1000 }, full)).toBeGreaterThan(full.seconds);
    expect(secondsFor({ script: "select-only", mode: "simple", clients: 100 }, full)).toBe(full.seconds);
  });

  test("the table shows medians, the two ratios, and why a target did not run", () => {
    const point: PointResult = newPoint({ script: "select-only", mode: "prepared", clients: 10 }, 2, 3);
    const ok = (tps: number) => summarise([{ ok: true, tps, latencyMs: 10000 / tps, failed: 0, transactions: tps * 3, connectMs: 1 }]);
    point.targets.pgbun = ok(2200);
    point.targets.PgBouncer = { status: "unsupported", reason: "PgBouncer 1.18", runs: [], medianTps: null, medianLatencyMs: null, failedTransactions: 0 };
    point.targets.direct = ok(4400);
    point.targets["pgbun-w2"] = ok(2400);
    const table = markdownTable([point]);
    const lines = table.split("\n");
    expect(lines).toHaveLength(4);
    expect(lines[2]).toMatch(/^\| -S prepared c=10 +\| +2200 \| +unsupported \| +4400 \|.*\| +- \| +0\.50 \|$/);
    expect(lines[3]).toContain("pgbun 2 workers");
    expect(lines[3]).toMatch(/\| +0\.55 \|$/);
  });

  test("prepare_unnamed and Unix-socket rows sit under their point with their own ratios and failure counts", () => {
    const point: PointResult = newPoint({ script: "select-only", mode: "extended", clients: 100 }, 2, 3);
    const ok = (tps: number, failed = 0) => summarise([{ ok: true, tps, latencyMs: 10000 / tps, failed, abortedClients: 0, transactions: tps * 3, connectMs: 1 }]);
    point.targets.pgbun = ok(1000);
    point.targets.PgBouncer = ok(1000);
    point.targets.direct = ok(2000);
    point.targets["pgbun prepare_unnamed"] = ok(1500, 3);
    point.targets["pgbun unix"] = ok(1200);
    point.targets["PgBouncer unix"] = ok(1100);
    const lines = markdownTable([point]).split("\n");
    expect(lines[0]).toContain("failed pgbun/PgBouncer/direct");
    expect(lines).toHaveLength(5);
    expect(lines[2]).toMatch(/^\| -S extended c=100 +\|.*\| +0 \/ 0 \/ 0 \| +1\.00 \| +0\.50 \|$/);
    expect(lines[3]).toMatch(/^\| -S extended c=100, pgbun prepare_unnamed +\| +1500 \| +1000 \| +2000 \|.*\| +3 \/ 0 \/ 0 \| +1\.50 \| +0\.75 \|$/);
    expect(lines[4]).toMatch(/^\| -S extended c=100, poolers over Unix socket +\| +1200 \| +1100 \| +2000 \|.*\| +1\.09 \| +0\.60 \|$/);
  });

  test("failures: aborted clients count, failed and stalled runs are named, targets that did not run show -", () => {
    const bad = { ok: false, tps: null, latencyMs: null, failed: null, abortedClients: 0, transactions: null, connectMs: null, killed: true, error: "pgbench stalled" };
    const good = { ok: true, tps: 100, latencyMs: 1, failed: 1, abortedClients: 0, transactions: 300, connectMs: 1 };
    const aborted = { ...good, ok: false, abortedClients: 4, error: "pgbench exit 2" };
    expect(failedText(summarise([good, bad, aborted, aborted]))).toBe("11 + 2 failed runs + 1 stalled run");
    expect(failedText(summarise([bad]))).toBe("0 + 1 stalled run");
    expect(failedText(summarise([good]))).toBe("1");
    expect(failedText({ status: "unsupported", runs: [], medianTps: null, medianLatencyMs: null, failedTransactions: 0 })).toBe("-");
    expect(failedText(undefined)).toBe("-");
  });

  test("a pgbench that stalls past -T is killed after the grace and reported as stalled, not waited for", async () => {
    // A listener that accepts and never answers: pgbench waits for the server's first reply and -T cannot stop it.
    const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const t0 = performance.now();
      const r = await runPgbench({ script: "select-only", mode: "prepared", clients: 2 }, 1, { port: silent.port, user: "postgres", password: "x", db: "postgres" }, 2);
      expect(performance.now() - t0).toBeLessThan(8000);
      expect(r).toMatchObject({ ok: false, killed: true });
      expect(r.error).toContain("stalled");
    } finally {
      silent.stop(true);
    }
  }, 15_000);
});

describe("bench ratios", () => {
  const run = (tps: number) => ({ ok: true, tps, latencyMs: 1000 / tps, failed: 0, transactions: tps, connectMs: 1 });
  test("pair each round's runs, so a slow round for both targets does not skew the ratio", async () => {
    const { ratio } = await import("../bench/report.ts");
    // Paired by round the ratios are 1.0, 0.923 and 0.9; the ratio of the medians (900 / 1000) would be 0.9.
    const a = summarise([run(1000), run(600), run(900)]);
    const b = summarise([run(1000), run(650), run(1000)]);
    expect(ratio(a, b)).toBeCloseTo(600 / 650, 5);
    const unpaired = summarise([run(100), run(300)]);
    expect(ratio(unpaired, b)).toBeCloseTo(unpaired.medianTps! / b.medianTps!, 5);
  });
});

describe("bench pooler CPU", () => {
  test("cpuTimeMs reads this process's CPU time and grows with work; null for a process that is gone", async () => {
    const { cpuTimeMs } = await import("../bench/system.ts");
    const before = cpuTimeMs(process.pid)!;
    const until = performance.now() + 150;
    let x = 0;
    while (performance.now() < until) x += Math.sqrt(x + 1);
    expect(x).toBeGreaterThan(0);
    expect(cpuTimeMs(process.pid)!).toBeGreaterThan(before);
    expect(cpuTimeMs(2 ** 22 + 7)).toBeNull();
  });

  test("the CPU table gives µs per transaction and the pgbun/PgBouncer ratio", async () => {
    const { cpuTable } = await import("../bench/report.ts");
    const point: PointResult = newPoint({ script: "select-only", mode: "simple", clients: 100 }, 2, 3);
    const run = (cpuMs: number) => ({ ok: true, tps: 1000, latencyMs: 1, failed: 0, transactions: 10000, connectMs: 1, poolerCpuMs: cpuMs });
    point.targets.pgbun = summarise([run(200), run(220), run(900)]);
    point.targets.PgBouncer = summarise([run(250), run(250), run(250)]);
    const lines = cpuTable([point]).split("\n");
    expect(lines[2]).toMatch(/^\| -S simple c=100 +\| +22\.0 \| +25\.0 \| +0\.88 \|$/);
  });
});

test("an unknown bench option is named together with the usage", () => {
  expect(() => parseOptions(["--bogus"])).toThrow(/--bogus[\s\S]*usage: bun bench\/run\.ts/);
});
