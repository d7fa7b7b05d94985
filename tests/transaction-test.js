// Checks transaction boundaries through pgbun in one pool mode; prints what passed and exits non-zero naming every violation.

import postgres from "postgres";
import { optionsOrExit, pgbunUrl } from "./load-options.js";

const CHECK_TIMEOUT_MS = 30_000;
/** An auto-detected client_idle_timeout longer than this is not waited for unless given with the flag. */
const LONGEST_AUTO_IDLE_WAIT_S = 60;

function connect(url, extra = {}) {
  return postgres(url, { max: 1, prepare: true, idle_timeout: 0, connect_timeout: 10, onnotice: () => {}, ...extra });
}

class Violation extends Error {}

function expect(cond, message) {
  if (!cond) throw new Violation(message);
}

/** Resolves to the error a query failed with, or null when it succeeded. */
const failure = (query) => Promise.resolve(query).then(() => null, (e) => e);

function withTimeout(promise, ms, what) {
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Violation(`${what} did not finish within ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

/** pgbun's client_idle_timeout as its admin console reports it (the test user must be in admin_users or stats_users). */
async function askIdleTimeout(o) {
  const admin = connect(pgbunUrl(o, "pgbun"), { prepare: false, fetch_types: false, connect_timeout: 5 });
  try {
    const rows = await withTimeout(admin`SHOW CONFIG`.simple(), 5000, "SHOW CONFIG");
    const row = rows.find((r) => r.key === "client_idle_timeout");
    return row ? { seconds: Number(row.value) } : { why: "SHOW CONFIG has no client_idle_timeout row" };
  } catch (err) {
    return { why: `could not read it from pgbun's admin console (${err?.message ?? err})` };
  } finally {
    await admin.end({ timeout: 1 });
  }
}

/**
 * Runs every check for o.mode against pgbun at o.host:o.port/o.database.
 * Returns the names that passed, the violations (name: what went wrong) and the checks skipped (with why).
 */
export async function runBoundaryChecks(o, log = (line) => process.stderr.write(line + "\n")) {
  const url = pgbunUrl(o);
  const run = `${o.mode}-${process.pid}-${Date.now()}`;
  const passed = [];
  const violations = [];
  const skipped = [];
  const opened = [];
  const open = (extra) => {
    const sql = connect(url, extra);
    opened.push(sql);
    return sql;
  };

  async function check(name, fn, ms = CHECK_TIMEOUT_MS) {
    try {
      await withTimeout(fn(), ms, name);
      passed.push(name);
      log(`ok    ${name}`);
    } catch (err) {
      const why = err instanceof Violation ? err.message : `unexpected error: ${err?.message ?? err}`;
      violations.push(`${name}: ${why}`);
      log(`FAIL  ${name}: ${why}`);
      // Leave no transaction open for the next check (a warning only when none is).
      if (o.mode !== "statement") await withTimeout(failure(a`ROLLBACK`), 5000, "ROLLBACK").catch(() => {});
    }
  }
  const skip = (name, why) => {
    skipped.push(`${name}: ${why}`);
    log(`skip  ${name}: ${why}`);
  };

  const count = async (sql, note) => (await sql`SELECT count(*)::int AS n FROM boundary_log WHERE run = ${run} AND note = ${note}`)[0].n;
  const insert = (sql, note) => sql`INSERT INTO boundary_log (run, note) VALUES (${run}, ${note})`;
  const a = open();
  const b = open();

  // The idle client starts first and is judged last, so the wait overlaps the other checks.
  const idle = await startIdleClient(o, open, skip);

  if (o.mode === "statement") {
    await check("statement mode refuses transaction blocks", async () => {
      const err = await failure(a`BEGIN`);
      expect(err !== null, "BEGIN was accepted");
      expect(String(err.message).includes("transaction blocks not allowed in statement pooling mode"), `BEGIN failed with "${err.message}", not the statement-mode refusal`);
      expect((await a`SELECT 1 AS one`)[0].one === 1, "the client cannot run a statement after the refusal");
    });
    await check("autocommit statements persist", async () => {
      await insert(a, "autocommit");
      expect((await count(b, "autocommit")) === 1, "a row inserted by one client is not visible to another");
    });
    await check("an error fails only its own statement", async () => {
      const err = await failure(a`SELECT 1/0 AS x`);
      expect(err?.code === "22012", `expected division_by_zero (22012), got ${err?.code ?? "success"}`);
      expect((await a`SELECT 1 AS one`)[0].one === 1, "the next statement failed too");
    });
  } else {
    await check("ROLLBACK really discards", async () => {
      await a`BEGIN`;
      await insert(a, "rolled-back");
      expect((await count(a, "rolled-back")) === 1, "the transaction does not see its own insert");
      expect((await count(b, "rolled-back")) === 0, "another client sees an uncommitted row (it shares the transaction's server)");
      await a`ROLLBACK`;
      expect((await count(b, "rolled-back")) === 0, "a rolled-back row is visible to another client");
      expect((await count(a, "rolled-back")) === 0, "a rolled-back row is visible to its own client");
    });
    await check("COMMIT persists", async () => {
      await a`BEGIN`;
      await insert(a, "committed");
      expect((await count(b, "committed")) === 0, "another client sees the row before COMMIT");
      await a`COMMIT`;
      expect((await count(b, "committed")) === 1, "a committed row is not visible to another client");
    });
    await check("an error aborts the transaction until ROLLBACK", async () => {
      await a`BEGIN`;
      const first = await failure(a`SELECT 1/0 AS x`);
      const second = await failure(a`SELECT 1 AS one`);
      const elsewhere = await failure(b`SELECT 1 AS one`);
      await a`ROLLBACK`;
      expect(first?.code === "22012", `expected division_by_zero (22012), got ${first?.code ?? "success"}`);
      expect(second?.code === "25P02", `expected in_failed_sql_transaction (25P02) after the error, got ${second?.code ?? "success"}`);
      expect(elsewhere === null, `another client failed while this transaction was aborted: ${elsewhere?.message}`);
      expect((await a`SELECT 1 AS one`)[0].one === 1, "the client cannot work after ROLLBACK");
    });
    await check("a transaction keeps one server until COMMIT, and nobody else gets it", async () => {
      await a`BEGIN`;
      const mine = (await a`SELECT pg_backend_pid() AS pid`)[0].pid;
      // In session mode every client holds a server: stay within a small pool.
      const others = Array.from({ length: o.mode === "session" ? 1 : 8 }, () => open());
      const seen = await Promise.all(others.map(async (sql) => {
        const pids = [];
        for (let i = 0; i < 10; i++) pids.push((await sql`SELECT pg_backend_pid() AS pid`)[0].pid);
        return pids;
      }));
      const again = (await a`SELECT pg_backend_pid() AS pid`)[0].pid;
      await a`COMMIT`;
      await Promise.all(others.map((sql) => sql.end({ timeout: 2 })));
      expect(again === mine, `the transaction moved from server ${mine} to ${again}`);
      expect(!seen.flat().includes(mine), `another client ran on server ${mine} while its transaction was open`);
    });
  }

  await check("a server killed mid-query is replaced", () => killedServerIsReplaced(o, open, b, run));

  if (idle !== null) await check(`an idle client is disconnected after client_idle_timeout (${idle.seconds} s) and a new connection works`, idle.judge, (idle.seconds + 10) * 1000);

  await Promise.all(opened.map((sql) => sql.end({ timeout: 2 })));
  return { passed, violations, skipped };
}

/** The killer is PostgreSQL itself when --direct-url is given, else another pgbun client (same role, so allowed to). */
async function killedServerIsReplaced(o, open, pooledKiller, run) {
  const victim = open();
  const killer = o["direct-url"] ? connect(o["direct-url"]) : pooledKiller;
  try {
    await victim`SELECT 1`;
    // A marker in the query text finds the victim's server in pg_stat_activity, whichever server that is.
    const marker = `pgbun-victim-${run}`;
    const started = performance.now();
    const victimQuery = failure(victim.unsafe(`SELECT pg_sleep(10) /* ${marker} */`));
    let pid = null;
    for (let i = 0; i < 50 && pid === null; i++) {
      const rows = await killer`SELECT pid FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid() AND query LIKE ${"%" + marker + "%"}`;
      pid = rows[0]?.pid ?? null;
      if (pid === null) await Bun.sleep(100);
    }
    expect(pid !== null, "the victim's query never showed up in pg_stat_activity");
    const killed = (await killer`SELECT pg_terminate_backend(${pid}) AS ok`)[0].ok;
    expect(killed === true, `pg_terminate_backend(${pid}) returned ${killed}`);
    const err = await victimQuery;
    expect(err !== null && performance.now() - started < 9000, "the victim's query was not interrupted by the kill");
    // The victim's client is allowed one error for the lost server (postgres.js may report the FATAL on the next
    // query, as it does against PostgreSQL itself); then it reconnects and must work.
    const pidOf = async () => (await victim`SELECT pg_backend_pid() AS pid`)[0].pid;
    const after = await pidOf().catch(pidOf);
    expect(after !== pid, `the victim still ran on the killed server ${pid}`);
    const fresh = Array.from({ length: o.mode === "session" ? 1 : 10 }, () => open());
    const pids = await Promise.all(fresh.map(async (sql) => (await sql`SELECT pg_backend_pid() AS pid`)[0].pid));
    await Promise.all(fresh.map((sql) => sql.end({ timeout: 2 })));
    expect(!pids.includes(pid), `a new client was given the killed server ${pid}`);
  } finally {
    if (o["direct-url"]) await killer.end({ timeout: 2 });
  }
}

/** Opens a client, lets it idle, and returns a judge that checks pgbun closed it in time; null when the check is skipped. */
async function startIdleClient(o, open, skip) {
  const name = "an idle client past client_idle_timeout is disconnected";
  if (o.mode === "session") {
    // A session-mode client holds its server for the whole session, so it is never idle in pgbun's sense (as in PgBouncer).
    skip(name, "in session mode a client keeps its server linked, and client_idle_timeout applies only to clients without one");
    return null;
  }
  let seconds = o["client-idle-timeout-seconds"];
  if (seconds === null) {
    const asked = await askIdleTimeout(o);
    if (asked.seconds === undefined) {
      skip(name, `${asked.why}; pass --client-idle-timeout-seconds N when pgbun runs with client_idle_timeout = N`);
      return null;
    }
    seconds = asked.seconds;
    if (seconds > LONGEST_AUTO_IDLE_WAIT_S) {
      skip(name, `pgbun's client_idle_timeout is ${seconds} s; pass --client-idle-timeout-seconds ${seconds} to wait that long`);
      return null;
    }
  }
  if (seconds === 0) {
    skip(name, "pgbun's client_idle_timeout is 0 (off); run pgbun with client_idle_timeout = N and pass --client-idle-timeout-seconds N");
    return null;
  }
  let closedAt = null;
  const sql = open({ onclose: () => (closedAt ??= performance.now()) });
  await sql`SELECT 1`;
  const idleSince = performance.now();
  const judge = async () => {
    // pgbun checks timeouts on a periodic tick: allow a second and a half past the timeout.
    const deadline = idleSince + (seconds + 1.5) * 1000;
    while (closedAt === null && performance.now() < deadline) await Bun.sleep(Math.min(250, Math.max(1, deadline - performance.now())));
    expect(closedAt !== null, `still connected after ${((performance.now() - idleSince) / 1000).toFixed(1)} s idle`);
    expect(closedAt - idleSince >= seconds * 1000 - 300, `disconnected after only ${((closedAt - idleSince) / 1000).toFixed(1)} s`);
    expect((await sql`SELECT 3 AS three`)[0].three === 3, "the client could not connect again");
  };
  return { seconds, judge };
}

if (import.meta.main) {
  const o = optionsOrExit("transaction-test.js", "checks pgbun's transaction boundaries in one pool mode; exits 1 naming each violation");
  const result = await runBoundaryChecks(o);
  console.log(JSON.stringify({ mode: o.mode, database: o.database, ...result }));
  if (result.violations.length > 0) {
    process.stderr.write(`transaction-test: ${result.violations.length} violation(s) in ${o.mode} mode:\n  ${result.violations.join("\n  ")}\n`);
    process.exit(1);
  }
}
