// tests/load-test.js and tests/transaction-test.js against a real pgbun running the stack config, in each pool mode.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { atEnd } from "./harness/cleanup.ts";
import { writeConfig } from "./harness/config-file.ts";
import { REPO_ROOT, startPgbun, type PgbunProcess } from "./harness/pgbun.ts";
import { startPostgres, type PgInstance } from "./harness/postgres.ts";
import { prepareStackDatabase, stackConfigText } from "./harness/stack.ts";
import { processOf, restartedBetween } from "./load-stats.js";

const IDLE_TIMEOUT_S = 2;
const SCRIPT_LIMIT_MS = 45_000;

let pg: PgInstance;
let bouncer: PgbunProcess;
let statsUrl: string;

beforeAll(async () => {
  pg = await startPostgres();
  await prepareStackDatabase(pg);
  const text = stackConfigText({
    listen: "127.0.0.1:0",
    statsListen: "127.0.0.1:0",
    pgHost: "127.0.0.1",
    pgPort: pg.port,
    settings: { client_idle_timeout: String(IDLE_TIMEOUT_S) },
  });
  bouncer = await startPgbun(["--config", writeConfig(text)]);
  let m: RegExpMatchArray | null = null;
  for (let i = 0; i < 100 && !(m = bouncer.output().match(/pgbun stats on (http:\/\/[\d.]+:\d+)/)); i++) await Bun.sleep(20);
  if (!m) throw new Error(`pgbun printed no stats address:\n${bouncer.output()}`);
  statsUrl = m[1]!;
});

afterAll(async () => {
  await bouncer?.stop();
  await pg?.stop();
});

interface Run {
  code: number | null;
  out: string;
  err: string;
}

interface Target {
  port: number;
  statsUrl: string;
}

/** Runs a script from tests/ against the pgbun under test (or another), killed if it outlives SCRIPT_LIMIT_MS. */
async function script(name: string, args: string[], env: Record<string, string> = {}, at: Target = { port: bouncer.port, statsUrl }): Promise<Run> {
  const proc = Bun.spawn([process.execPath, `tests/${name}`, "--port", String(at.port), "--stats-url", at.statsUrl, ...args], {
    cwd: REPO_ROOT,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, PGBUN_HOST: "127.0.0.1", ...env },
  });
  const killer = setTimeout(() => proc.kill("SIGKILL"), SCRIPT_LIMIT_MS);
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(killer);
  return { code, out, err };
}

function json(r: Run): Record<string, any> {
  try {
    return JSON.parse(r.out);
  } catch {
    throw new Error(`not one JSON object on stdout (exit ${r.code}):\n${r.out}\nstderr:\n${r.err}`);
  }
}

describe("load-test.js", () => {
  const clients = { session: 5, transaction: 50, statement: 50 } as const;
  for (const mode of ["session", "transaction", "statement"] as const) {
    test(`${mode} mode: one JSON object, zero errors, and pooling figures that match the queries sent`, async () => {
      const r = await script("load-test.js", ["--mode", mode, "--concurrency", String(clients[mode]), "--duration", "3"]);
      const j = json(r);
      expect(r.code).toBe(0);
      expect(j).toMatchObject({ mode, scenario: "load", database: `pgbun_${mode}`, concurrency: clients[mode], errors: 0, error_rate: 0 });
      expect(j.duration_seconds).toBeGreaterThanOrEqual(3);
      expect(j.total_queries).toBeGreaterThan(100);
      expect(j.successful_queries).toBe(j.total_queries);
      expect(j.throughput_qps).toBeGreaterThan(0);
      const l = j.latency_ms;
      expect(0 < l.p50 && l.p50 <= l.p95 && l.p95 <= l.p99 && l.p99 <= l.max).toBe(true);
      expect(l.avg).toBeGreaterThan(0);
      // BEGIN, SELECT, UPDATE, COMMIT per transaction; one statement per transaction in statement mode.
      expect(j.client_transactions).toBe(mode === "statement" ? j.successful_queries : j.successful_queries / 4);
      expect(j.pool_size).toBe(5);
      expect(j.max_server_connections_used).toBeGreaterThanOrEqual(1);
      expect(j.max_server_connections_used).toBeLessThanOrEqual(5);
      expect(j.server_connections_opened).toBeLessThanOrEqual(5);
      expect(j.client_connections_opened).toBe(clients[mode]);
      expect(j.client_connections_dropped).toBe(0);
      expect(j).toMatchObject({ pgbun_restarted: false, clients_starved: 0 });
      expect(j.pooling_seconds).toBe(j.duration_seconds);
      if (mode === "transaction") {
        // 50 clients over 5 servers: nearly every transaction is served by an already open server.
        expect(j.reuse_efficiency_percent).toBeGreaterThan(90);
      }
      expect(r.err).toContain(`load-test ${mode}/load:`);
    });
  }

  test("reconnect scenario: clients reconnect every N queries without errors", async () => {
    const r = await script("load-test.js", ["--scenario", "reconnect", "--reconnect-every", "8", "--concurrency", "10", "--duration", "2"]);
    const j = json(r);
    expect(r.code).toBe(0);
    expect(j.errors).toBe(0);
    expect(j.client_connections_opened).toBeGreaterThan(20);
    expect(j.server_connections_opened).toBeLessThanOrEqual(5);
  });

  test("idle scenario: clients idle past client_idle_timeout are dropped by pgbun and reconnect without errors", async () => {
    const r = await script("load-test.js", ["--scenario", "idle", "--idle-gap", String(IDLE_TIMEOUT_S + 0.7), "--concurrency", "5", "--duration", "4"]);
    const j = json(r);
    expect(r.code).toBe(0);
    expect(j.errors).toBe(0);
    expect(j.client_connections_dropped).toBeGreaterThanOrEqual(5);
    expect(j.client_transactions).toBe(j.successful_queries / 4);
  });

  test("boundary scenario runs transaction-test.js's checks and reports them in the JSON", async () => {
    const r = await script("load-test.js", ["--scenario", "boundary", "--mode", "statement", "--client-idle-timeout-seconds", "0"]);
    const j = json(r);
    expect(r.code).toBe(0);
    expect(j.boundary.violations).toEqual([]);
    expect(j.boundary.passed).toContain("statement mode refuses transaction blocks");
    expect(j.total_queries).toBeNull();
  });

  test("--out writes the same JSON; environment variables stand in for flags; a bad flag exits 2 naming it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pgbun-load-out-"));
    atEnd(() => rmSync(dir, { recursive: true, force: true }));
    const out = join(dir, "result.json");
    const r = await script("load-test.js", ["--out", out], { PGBUN_CONCURRENCY: "3", PGBUN_DURATION: "1", PGBUN_MODE: "statement" });
    expect(r.code).toBe(0);
    expect(JSON.parse(readFileSync(out, "utf8"))).toEqual(json(r));
    expect(json(r)).toMatchObject({ mode: "statement", concurrency: 3 });
    const bad = await script("load-test.js", ["--mode", "sometimes"]);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("--mode must be session, transaction or statement");
    const typo = await script("load-test.js", ["--concurency", "5"]);
    expect(typo.code).toBe(2);
    expect(typo.err).toContain("unknown flag --concurency");
  });

  test("without a reachable stats endpoint the pooling figures are null, never invented", async () => {
    const r = await script("load-test.js", ["--concurrency", "2", "--duration", "1", "--stats-url", "http://127.0.0.1:9"]);
    const j = json(r);
    expect(r.code).toBe(0);
    expect(j.errors).toBe(0);
    for (const key of ["client_transactions", "server_connections_opened", "max_server_connections_used", "reuse_efficiency_percent"]) expect(j[key]).toBeNull();
    expect(r.err).toContain("pooling figures will be null");
  });
});

describe("transaction-test.js", () => {
  for (const mode of ["session", "transaction", "statement"] as const) {
    test(`${mode} mode passes every boundary check`, async () => {
      // Transaction mode kills its victim through PostgreSQL directly; the others through a pgbun client.
      const direct = mode === "transaction" ? ["--direct-url", pg.url("pgbun_user", "pgbun_pass", "pgbun_test")] : [];
      const r = await script("transaction-test.js", ["--mode", mode, "--client-idle-timeout-seconds", String(IDLE_TIMEOUT_S), ...direct]);
      expect(r.err).not.toContain("FAIL");
      expect(r.code).toBe(0);
      const j = json(r);
      expect(j.violations).toEqual([]);
      expect(j.passed).toContain("a server killed mid-query is replaced");
      expect(j.passed.length).toBeGreaterThanOrEqual(mode === "session" ? 5 : 4);
      if (mode !== "session") expect(j.passed.some((p: string) => p.startsWith("an idle client is disconnected"))).toBe(true);
    });
  }

  test("without --client-idle-timeout-seconds it asks pgbun's admin console for the timeout", async () => {
    const r = await script("transaction-test.js", ["--mode", "statement"]);
    expect(r.code).toBe(0);
    expect(r.err).toContain(`an idle client is disconnected after client_idle_timeout (${IDLE_TIMEOUT_S} s)`);
  });

  test("a violation makes it exit 1 and name it (transaction checks against the statement-mode database)", async () => {
    const r = await script("transaction-test.js", ["--mode", "transaction", "--database", "pgbun_statement", "--client-idle-timeout-seconds", "0"]);
    expect(r.code).toBe(1);
    expect(json(r).violations.length).toBeGreaterThan(0);
    expect(r.err).toContain("violation(s) in transaction mode");
    expect(r.err).toContain("ROLLBACK really discards: unexpected error: transaction blocks not allowed in statement pooling mode");
  });
});

/** A port nothing listens on right now, so a pgbun can be restarted on the same address. */
function freePort(): number {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}

describe("load-test.js against a pgbun of its own (fresh, then restarted mid-run)", () => {
  let own: PgbunProcess;
  let at: Target;
  let config: string;

  beforeAll(async () => {
    const [port, statsPort] = [freePort(), freePort()];
    at = { port, statsUrl: `http://127.0.0.1:${statsPort}` };
    config = writeConfig(stackConfigText({ listen: `127.0.0.1:${port}`, statsListen: `127.0.0.1:${statsPort}`, pgHost: "127.0.0.1", pgPort: pg.port }));
    own = await startPgbun(["--config", config, "--listen", `127.0.0.1:${port}`]);
  });

  afterAll(async () => {
    await own?.stop();
  });

  test("session mode with more clients than servers warns on the first run, before its pool exists, and counts who waited", async () => {
    const r = await script("load-test.js", ["--mode", "session", "--concurrency", "8", "--duration", "2"], {}, at);
    const j = json(r);
    expect(r.code).toBe(0);
    // The pool did not exist before this run: the size comes from the admin console.
    expect(r.err).toContain("session mode with 8 clients over 5 servers");
    expect(r.err).toContain("so 3 will wait the whole run");
    expect(j.clients_starved).toBe(3);
    expect(r.err).toContain("3 of 8 clients got no answer before the deadline");
  });

  test("a restart mid-run is reported; the pooling figures count only from it; drops never outnumber opens; it ends on time", async () => {
    // Earlier work leaves the pool's counters high: deltas across a restart would go negative.
    const warm = json(await script("load-test.js", ["--duration", "1"], {}, at));
    expect(warm.client_transactions).toBeGreaterThan(50);
    const duration = 6;
    const t0 = performance.now();
    const running = script("load-test.js", ["--duration", String(duration)], {}, at);
    await Bun.sleep(2500);
    await own.stop("SIGKILL");
    own = await startPgbun(["--config", config, "--listen", `127.0.0.1:${at.port}`]);
    const r = await running;
    const wall = (performance.now() - t0) / 1000;
    const j = json(r);
    // Clients whose connection went away are errors: exit 1, never a hang.
    expect(r.code).toBe(1);
    expect(j.errors).toBeGreaterThan(0);
    expect(j.duration_seconds).toBeLessThan(duration + 2);
    expect(wall).toBeLessThan(duration + 5);
    expect(r.err).not.toContain("still busy");
    expect(j.pgbun_restarted).toBe(true);
    expect(r.err).toContain("pgbun restarted during the run (once)");
    expect(j.pooling_seconds).toBeGreaterThan(0);
    expect(j.pooling_seconds).toBeLessThan(duration - 1);
    expect(j.client_transactions).toBeGreaterThan(0);
    expect(j.client_transactions).toBeLessThanOrEqual(j.successful_queries / 4);
    expect(j.server_connections_opened).toBeGreaterThanOrEqual(1);
    expect(j.server_connections_opened).toBeLessThanOrEqual(5);
    // Every client was dropped once and logged in again to the new pgbun; refused attempts are neither.
    expect(j.client_connections_dropped).toBeGreaterThan(0);
    expect(j.client_connections_dropped).toBeLessThanOrEqual(50);
    expect(j.client_connections_opened).toBeGreaterThan(50);
    expect(j.client_connections_opened).toBeLessThanOrEqual(100);
    // Averaged over the run itself.
    expect(Math.abs(j.throughput_qps * j.duration_seconds - j.successful_queries) / j.successful_queries).toBeLessThan(0.05);
  });

  test("after the restart the same pgbun reads as unrestarted again", async () => {
    const j = json(await script("load-test.js", ["--duration", "1", "--concurrency", "5"], {}, at));
    expect(j.pgbun_restarted).toBe(false);
    expect(j.client_transactions).toBe(j.successful_queries / 4);
  });
});

describe("load-stats.js: telling one pgbun process from the next", () => {
  const at = (body: Record<string, unknown>, now: number) => processOf(body, now);

  test("a different run_id is a restart even in the same pid (bun --watch reloads in place)", () => {
    const a = at({ run_id: "a", started_at: "t1", pid: 7, uptime_seconds: 100 }, 1_000_000);
    expect(restartedBetween(a, at({ run_id: "a", started_at: "t1", pid: 7, uptime_seconds: 101 }, 1_001_000))).toBe(false);
    expect(restartedBetween(a, at({ run_id: "b", started_at: "t1", pid: 7, uptime_seconds: 101 }, 1_001_000))).toBe(true);
  });

  test("without run_id or started_at: a new pid, or a start time that moved, is a restart", () => {
    const a = at({ pid: 7, uptime_seconds: 100 }, 1_000_000);
    expect(restartedBetween(a, at({ pid: 8, uptime_seconds: 101 }, 1_001_000))).toBe(true);
    expect(restartedBetween(a, at({ pid: 7, uptime_seconds: 100.9 }, 1_001_000))).toBe(false);
    // Same pid, uptime 3 s although 1 s passed: it started again, even if the new uptime is no smaller than the old.
    expect(restartedBetween(a, at({ pid: 7, uptime_seconds: 3 }, 1_001_000))).toBe(true);
    expect(restartedBetween(at({ pid: 7, uptime_seconds: 1 }, 1_000_000), at({ pid: 7, uptime_seconds: 2 }, 1_005_000))).toBe(true);
  });
});
