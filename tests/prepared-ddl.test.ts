// Prepared statements after DDL: every driver sees through pgbun exactly what a direct connection shows it (issue 10 §1).
//
// Each scenario runs twice with the same driver, once straight against PostgreSQL and once through pgbun in
// transaction mode, and the two step-by-step outcomes must be equal: the same rows with the same JS (or Python)
// values and types, the same SQLSTATE at the same step. Set PREPARED_DDL_SELF_CHECK=1 to run the second pass
// directly too, which checks the scenarios themselves.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { SQL } from "bun";
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { atEnd } from "./harness/cleanup.ts";
import { startPgbun, type PgbunProcess } from "./harness/pgbun.ts";
import { startPostgres, type PgInstance } from "./harness/postgres.ts";
import { RawClient, msg } from "./harness/raw-client.ts";

const SELF_CHECK = process.env.PREPARED_DDL_SELF_CHECK === "1";
const AS_APP = { user: "app", password: "apppass", db: "app" };

let pg: PgInstance;
let pool1: PgbunProcess; // every client shares the one server
let pool2: PgbunProcess; // a blocker holding one server moves a client to the other

beforeAll(async () => {
  pg = await startPostgres({ maxConnections: 60 });
  const upstream = pg.url("app", "apppass", "app");
  pool1 = await startPgbun(["--upstream", upstream, "--pool-mode", "transaction", "--pool-size", "1"]);
  pool2 = await startPgbun(["--upstream", upstream, "--pool-mode", "transaction", "--pool-size", "2"]);
});

afterAll(async () => {
  await pool1?.stop();
  await pool2?.stop();
  await pg?.stop();
});

// ---------------------------------------------------------------------------------------------------------------
// Scenarios. {t} is the test's own table name; schemas {t}_a and {t}_b hold same-named tables for search_path.

/** A client runs a statement (prepared by its driver); `cols` names what pgbench reports of its one row. */
interface RunStep {
  as: string;
  sql: string;
  params?: string[];
  cols?: string[];
}
type Step = RunStep | { leave: string } | { hold: string } | { release: true };

interface Scenario {
  name: string;
  pool: 1 | 2;
  setup: string;
  /** Settings per client, sent at login (startup parameters; -c options for libpq). */
  settings?: Record<string, Record<string, string>>;
  steps: Step[];
  /** Read directly after the last step: what the scenario left behind. */
  check?: string;
  /** Drivers for which pgbun still differs from a direct connection: these run as test.failing. */
  failing?: Array<Driver["name"]>;
}

const TWO_SCHEMAS = (a: string, b: string) =>
  `create schema {t}_a; create table {t}_a.{t} ${a}; create schema {t}_b; create table {t}_b.{t} ${b};`;

const SELECT_X = "select x from {t}";
const SELECT_ALL = "select * from {t}";
const INSERT_NAME = "insert into {t} (name) values ($1)";
const INT_42 = "create table {t} (x int); insert into {t} values (42);";
const NAME_TEXT = "create table {t} (name text);";
const NAMES = "select string_agg(name::text, ',' order by name::text) from {t}";

const sel = (as: string): RunStep => ({ as, sql: SELECT_X, cols: ["x"] });
const selAll = (as: string): RunStep => ({ as, sql: SELECT_ALL, cols: ["x", "y"] });
const ins = (as: string, v: string): RunStep => ({ as, sql: INSERT_NAME, params: [v] });
const run = (as: string, sql: string): RunStep => ({ as, sql });
// PostgreSQL turns these literals into constants when it parses the statement, with the session's DateStyle and TimeZone.
const constants = (as: string): RunStep => ({ as, sql: "select '01/02/2003'::date::text as d, extract(epoch from '2024-01-01 00:00'::timestamptz)::int as e", cols: ["d", "e"] });
const dropCreateText = (as: string): Step[] => [run(as, "drop table {t}"), run(as, "create table {t} (x text)"), run(as, "insert into {t} values ('forty-two')")];
const alterToText = (as: string) => run(as, "alter table {t} alter column x type text");
const addColumn = (as: string) => run(as, "alter table {t} add column y text default 'why'");
const alterToInt = (as: string) => run(as, "alter table {t} alter column name type int using name::integer");

const SCENARIOS: Scenario[] = [
  // §1 A fresh client's Parse must get the current plan, not a server statement another client left behind.
  {
    name: "a fresh client after DROP and CREATE of the table gets the new column type",
    pool: 1,
    setup: INT_42,
    steps: [sel("A"), { leave: "A" }, ...dropCreateText("B"), sel("B"), sel("B")],
  },
  {
    name: "a fresh client after ALTER COLUMN TYPE gets the new column type",
    pool: 1,
    setup: INT_42,
    steps: [sel("A"), { leave: "A" }, alterToText("B"), sel("B"), sel("B")],
  },
  {
    name: "a fresh client's select * after ADD COLUMN gets the new column",
    pool: 1,
    setup: INT_42,
    steps: [selAll("A"), { leave: "A" }, addColumn("B"), selAll("B"), selAll("B")],
  },
  {
    name: "a client with another search_path gets its own schema's table",
    pool: 1,
    setup: TWO_SCHEMAS("(x int)", "(x text)") + "insert into {t}_a.{t} values (42); insert into {t}_b.{t} values ('forty-two');",
    settings: { A: { search_path: "{t}_a" }, B: { search_path: "{t}_b" } },
    steps: [sel("A"), { leave: "A" }, sel("B"), sel("B")],
  },
  {
    name: "a fresh client's insert after ALTER COLUMN TYPE infers the new parameter type",
    pool: 1,
    setup: NAME_TEXT,
    steps: [ins("A", "1"), { leave: "A" }, alterToInt("B"), ins("B", "2"), ins("B", "3")],
    check: NAMES,
  },
  {
    name: "a client with another search_path infers its own table's parameter type",
    pool: 1,
    setup: TWO_SCHEMAS("(name text)", "(name int)"),
    settings: { A: { search_path: "{t}_a" }, B: { search_path: "{t}_b" } },
    steps: [ins("A", "1"), ins("B", "2"), ins("A", "3"), ins("B", "4")],
    check: "select (select string_agg(name, ',' order by name) from {t}_a.{t}) || ' / ' || (select string_agg(name::text, ',' order by name) from {t}_b.{t})",
  },
  {
    name: "a client keeps the constants its own DateStyle and TimeZone gave its statement when another client prepares the same text",
    pool: 1,
    setup: "",
    settings: { A: { DateStyle: "ISO, MDY", TimeZone: "UTC" }, B: { DateStyle: "ISO, DMY", TimeZone: "Asia/Tokyo" } },
    steps: [constants("A"), constants("B"), constants("A")],
    // Server statements are scoped by every setting of the client's Parse, so B's never replaces A's.
  },

  // §2 A client's own statement on its own server: its driver's re-prepare after 42804 or 0A000 must work as directly.
  {
    name: "the driver's re-prepare after 42804 (ALTER COLUMN TYPE under an insert) works",
    pool: 1,
    setup: NAME_TEXT,
    steps: [ins("A", "1"), alterToInt("A"), ins("A", "2"), ins("A", "3")],
    check: NAMES,
  },
  {
    name: "the driver's re-prepare after 42804 (DROP and CREATE under an insert) works",
    pool: 1,
    setup: NAME_TEXT,
    steps: [ins("A", "1"), run("A", "drop table {t}"), run("A", "create table {t} (name int)"), ins("A", "2"), ins("A", "3")],
    check: NAMES,
  },
  {
    name: "0A000 after ALTER COLUMN TYPE comes as directly, and so does the driver's re-prepare",
    pool: 1,
    setup: INT_42,
    steps: [sel("A"), alterToText("A"), sel("A"), sel("A")],
  },
  {
    name: "0A000 for select * after ADD COLUMN comes as directly, and so does the driver's re-prepare",
    pool: 1,
    setup: INT_42,
    steps: [selAll("A"), addColumn("A"), selAll("A"), selAll("A")],
  },
  {
    name: "0A000 after DROP and CREATE comes as directly, and so does the driver's re-prepare",
    pool: 1,
    setup: INT_42,
    steps: [sel("A"), ...dropCreateText("A"), sel("A"), sel("A")],
  },

  // §3 A client moved to another server: a statement prepared there behind its back must keep the shape it was told.
  {
    name: "a client moved to another server after DROP and CREATE never gets rows under its old description",
    pool: 2,
    setup: INT_42,
    steps: [sel("A"), { hold: "A" }, ...dropCreateText("A"), sel("A"), sel("A")],
  },
  {
    name: "a client moved to another server after ALTER COLUMN TYPE never gets rows under its old description",
    pool: 2,
    setup: INT_42,
    steps: [sel("A"), { hold: "A" }, alterToText("A"), sel("A"), sel("A")],
  },
  {
    name: "a client moved to another server after ADD COLUMN never gets select * rows under its old description",
    pool: 2,
    setup: INT_42,
    steps: [selAll("A"), { hold: "A" }, addColumn("A"), selAll("A"), selAll("A")],
  },
  {
    name: "a client moved to another server after ALTER COLUMN TYPE keeps its statement's parameter type",
    pool: 2,
    setup: NAME_TEXT,
    steps: [ins("A", "1"), { hold: "A" }, alterToInt("A"), ins("A", "2"), ins("A", "3")],
    check: NAMES,
  },
  {
    name: "a client moved onto a server whose statement was prepared under another search_path gets its own table",
    pool: 2,
    setup: TWO_SCHEMAS("(x int)", "(x text)") + "insert into {t}_a.{t} values (42); insert into {t}_b.{t} values ('forty-two');",
    settings: { A: { search_path: "{t}_a" }, C: { search_path: "{t}_b" } },
    steps: [sel("C"), { hold: "C" }, sel("A"), { release: true }, { hold: "A" }, sel("A"), sel("A"), sel("C")],
  },
  {
    name: "a client moving between two servers that both hold its old plan sees the errors a direct connection shows",
    pool: 2,
    setup: INT_42,
    steps: [sel("A"), { hold: "A" }, sel("A"), { release: true }, alterToText("A"), sel("A"), { hold: "A" }, sel("A"), { release: true }, sel("A")],
  },
];

// ---------------------------------------------------------------------------------------------------------------
// Drivers: one connection per scenario client, outcomes normalised to plain data that toEqual can compare.

interface Conn {
  run(step: RunStep): Promise<unknown>;
  close(): Promise<void>;
}

interface Driver {
  name: "postgres.js" | "Bun.sql" | "psycopg" | "pgbench";
  /** `plan` lists the statements this client will run (pgbench needs its script up front). */
  connect(port: number, settings: Record<string, string>, plan: RunStep[]): Promise<Conn>;
}

/** A tagged-template call as an application writes it, built from SQL text with $n placeholders. */
function template(sql: string): TemplateStringsArray {
  const parts = sql.split(/\$\d+/);
  return Object.defineProperty([...parts], "raw", { value: [...parts] }) as unknown as TemplateStringsArray;
}

function jsRows(rows: ArrayLike<Record<string, unknown>>): unknown {
  return Array.from(rows, (r) => Object.entries(r).map(([k, v]) => [k, v === null ? "null" : typeof v, v instanceof Uint8Array ? Array.from(v) : typeof v === "bigint" ? String(v) : v]));
}

const postgresJs: Driver = {
  name: "postgres.js",
  async connect(port, settings) {
    const sql = postgres(`postgres://app:apppass@127.0.0.1:${port}/app`, { max: 1, onnotice: () => {}, connection: settings });
    return {
      async run(step) {
        try {
          return { rows: jsRows(await sql<Array<Record<string, unknown>>>(template(step.sql), ...(step.params ?? []))) };
        } catch (err) {
          return { error: (err as { code?: string }).code ?? String(err) };
        }
      },
      close: () => sql.end({ timeout: 5 }),
    };
  },
};

const bunSql: Driver = {
  name: "Bun.sql",
  async connect(port, settings) {
    const sql = new SQL({ url: `postgres://app:apppass@127.0.0.1:${port}/app`, max: 1, connection: settings });
    return {
      async run(step) {
        try {
          return { rows: jsRows(await sql(template(step.sql), ...(step.params ?? []))) };
        } catch (err) {
          const e = err as { errno?: string; code?: string };
          return { error: e.errno ?? e.code ?? String(err) };
        }
      },
      close: () => sql.close(),
    };
  },
};

// psycopg 3 with prepare_threshold=0 prepares every statement on first use; one process is one client.
const PSYCOPG_CLIENT = `
import json, sys, psycopg
conn = psycopg.connect(sys.argv[1], autocommit=True, prepare_threshold=0)
def cell(v):
    return [type(v).__name__, None if v is None else str(v)]
for line in sys.stdin:
    req = json.loads(line)
    try:
        cur = conn.execute(req["sql"], req["params"])
        out = {"status": cur.statusmessage} if cur.description is None else {"cols": [d.name for d in cur.description], "rows": [[cell(v) for v in r] for r in cur.fetchall()]}
    except psycopg.Error as e:
        out = {"error": e.sqlstate or type(e).__name__}
    print(json.dumps(out), flush=True)
`;

const psycopgDriver: Driver = {
  name: "psycopg",
  async connect(port, settings) {
    const conninfo = `host=127.0.0.1 port=${port} user=app password=apppass dbname=app options='${libpqOptions(settings).replace(/\\/g, "\\\\")}'`;
    const proc = Bun.spawn(["/usr/bin/python3", "-c", PSYCOPG_CLIENT, conninfo], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
    const lines = lineReader(proc.stdout);
    return {
      async run(step) {
        proc.stdin.write(JSON.stringify({ sql: step.sql.replace(/\$\d+/g, "%s"), params: step.params ?? null }) + "\n");
        await proc.stdin.flush();
        const line = await lines();
        if (line === null) return { error: "psycopg exited: " + (await new Response(proc.stderr).text()) };
        return JSON.parse(line);
      },
      async close() {
        await proc.stdin.end();
        await proc.exited;
      },
    };
  },
};

/** Settings as libpq's options ("-c key=value", spaces escaped), for psycopg's conninfo and pgbench's PGOPTIONS. */
function libpqOptions(settings: Record<string, string>): string {
  return Object.entries(settings)
    .map(([k, v]) => `-c ${k}=${v.replace(/ /g, "\\ ")}`)
    .join(" ");
}

function lineReader(stream: ReadableStream<Uint8Array>): () => Promise<string | null> {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  return async () => {
    while (!buf.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) return null;
      buf += decoder.decode(value, { stream: true });
    }
    const i = buf.indexOf("\n");
    const line = buf.slice(0, i);
    buf = buf.slice(i + 1);
    return line;
  };
}

// pgbench -M prepared runs one custom script forever; \setshell asks this test which statement to run next (one
// \if branch each, so each is prepared on first use and reused after), \shell hands back the row it read with \gset.
const PGBENCH_CTL = `dir=$1; cmd=$2; seq=$3
case $cmd in
  next) i=0; while [ ! -f "$dir/op.$seq" ]; do sleep 0.01; i=$((i+1)); if [ $i -gt 6000 ]; then echo 999; exit 0; fi; done; head -n 1 "$dir/op.$seq" ;;
  param) v=$(sed -n "$(($4 + 1))p" "$dir/op.$seq"); echo "\${v:-0}" ;;
  done) shift 3; echo "$*" > "$dir/done.tmp"; mv "$dir/done.tmp" "$dir/done.$seq" ;;
esac
`;
const UNSET = "987654321";
const QUIT = 999;

function pgbenchScript(dir: string, plan: RunStep[]): string {
  const ctl = `sh ${dir}/ctl.sh ${dir}`;
  const maxParams = Math.max(0, ...plan.map((s) => s.params?.length ?? 0));
  const lines = ["\\set seq :seq + 1", `\\setshell op ${ctl} next :seq`];
  for (let i = 1; i <= maxParams; i++) lines.push(`\\setshell p${i} ${ctl} param :seq ${i}`);
  plan.forEach((s, k) => {
    lines.push(`${k === 0 ? "\\if" : "\\elif"} :op = ${k}`);
    const sql = s.sql.replace(/\$(\d+)/g, ":p$1");
    lines.push(s.cols ? `${sql} \\gset r_` : sql);
    lines.push(`\\shell ${ctl} done :seq ${(s.cols ?? []).map((c) => ":r_" + c).join(" ")}`);
    for (const c of s.cols ?? []) lines.push(`\\set r_${c} ${UNSET}`);
  });
  lines.push(`${plan.length === 0 ? "\\if" : "\\elif"} :op = ${QUIT}`, "\\set quit 1 / 0", "\\endif", "");
  return lines.join("\n");
}

/** The polling shell must never see a half-written file: write aside, then rename. */
function writeOp(dir: string, seq: number, lines: Array<string | number>): void {
  writeFileSync(join(dir, "op.tmp"), lines.join("\n") + "\n");
  renameSync(join(dir, "op.tmp"), join(dir, `op.${seq}`));
}

const pgbench: Driver = {
  name: "pgbench",
  async connect(port, settings, plan) {
    const dir = mkdtempSync(join(tmpdir(), "pgbun-ddl-pgbench-"));
    atEnd(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, "ctl.sh"), PGBENCH_CTL);
    writeFileSync(join(dir, "script.sql"), pgbenchScript(dir, plan));
    const cols = [...new Set(plan.flatMap((s) => s.cols ?? []))];
    const env: Record<string, string | undefined> = { ...process.env, PGPASSWORD: "apppass", PGOPTIONS: libpqOptions(settings) };
    const proc = Bun.spawn(
      ["pgbench", "-n", "-M", "prepared", "-t", "100000", "-D", "seq=0", ...cols.flatMap((c) => ["-D", `r_${c}=${UNSET}`]), "-f", join(dir, "script.sql"), "-h", "127.0.0.1", "-p", String(port), "-U", "app", "app"],
      { env, stdout: "pipe", stderr: "pipe" },
    );
    let err = "";
    void (async () => {
      for await (const chunk of proc.stderr) err += new TextDecoder().decode(chunk);
    })();
    void new Response(proc.stdout).text();
    let seq = 0;
    let gone = false;
    return {
      async run(step) {
        if (gone) return { gone: true };
        const op = plan.findIndex((s) => s.sql === step.sql);
        seq++;
        writeOp(dir, seq, [op, ...(step.params ?? [])]);
        const done = join(dir, `done.${seq}`);
        const deadline = Date.now() + 20_000;
        while (!existsSync(done)) {
          if (proc.exitCode !== null || Date.now() > deadline) {
            gone = true;
            await Promise.race([proc.exited, Bun.sleep(1000)]);
            const aborted = err.match(/aborted in command \d+ query \d+: (.*)/);
            return { error: aborted ? aborted[1] : `pgbench exited (${proc.exitCode}): ${err.trim()}` };
          }
          await Bun.sleep(5);
        }
        const values = readFileSync(done, "utf8").trim().split(" ").filter((v) => v !== "");
        return { ok: values.map((v) => (v === UNSET ? "unset" : v)) };
      },
      async close() {
        if (!gone) writeOp(dir, seq + 1, [QUIT]);
        await Promise.race([proc.exited, Bun.sleep(5000)]);
        if (proc.exitCode === null) proc.kill();
      },
    };
  },
};

const DRIVERS: Driver[] = [postgresJs, bunSql, psycopgDriver, pgbench];

// ---------------------------------------------------------------------------------------------------------------
// The runner.

/** Holds a server in an open transaction; says which backend it holds. */
async function blocker(port: number): Promise<{ pid: string; client: RawClient }> {
  const client = await RawClient.connect(port);
  await client.login("app", "app", "apppass");
  client.send(msg.query("BEGIN"));
  await client.untilReady();
  client.send(msg.query("SELECT pg_backend_pid()"));
  let pid = "";
  for (;;) {
    const m = await client.next();
    if (m.tag === "D") pid = new TextDecoder().decode(m.body.slice(6));
    if (m.tag === "Z") break;
  }
  return { pid, client };
}

function release(held: RawClient[]): void {
  for (const c of held.splice(0)) {
    c.send(msg.query("COMMIT"));
    c.close();
  }
}

/** Runs a scenario with one driver against `port` (PostgreSQL itself or a pgbun); returns every step's outcome. */
async function play(s: Scenario, driver: Driver, t: string, port: number, viaPgbun: boolean): Promise<unknown[]> {
  const fill = (text: string) => text.replaceAll("{t}", t);
  await pg.psql(`drop schema if exists ${t}_a cascade; drop schema if exists ${t}_b cascade; drop table if exists ${t}; ${fill(s.setup)}`, AS_APP);
  const runSteps = s.steps.filter((x): x is RunStep => "as" in x).map((x) => ({ ...x, sql: fill(x.sql) }));
  const conns = new Map<string, Conn>();
  const lastSql = new Map<string, string>();
  const held: RawClient[] = [];
  const outcomes: unknown[] = [];
  try {
    for (const step of s.steps) {
      if ("as" in step) {
        const filled = { ...step, sql: fill(step.sql) };
        let c = conns.get(step.as);
        if (c === undefined) {
          const plan = runSteps.filter((x, i, all) => x.as === step.as && all.findIndex((y) => y.as === x.as && y.sql === x.sql) === i);
          const settings = Object.entries(s.settings?.[step.as] ?? {}).map(([k, v]) => [k, fill(v)]);
          c = await driver.connect(port, Object.fromEntries(settings), plan);
          conns.set(step.as, c);
        }
        outcomes.push(await c.run(filled));
        lastSql.set(step.as, filled.sql);
      } else if ("leave" in step) {
        await conns.get(step.leave)?.close();
        conns.delete(step.leave);
      } else if ("hold" in step) {
        if (!viaPgbun) {
          held.push((await blocker(port)).client);
          continue;
        }
        // The backend that last ran the client's statement (drivers differ in its spacing: Bun.sql writes "$1 )", pgbench
        // keeps a trailing space); blockers take servers until one holds it.
        const sql = lastSql.get(step.hold)!.replaceAll("'", "''");
        const target = await pg.psql(
          `SELECT pid FROM pg_stat_activity WHERE datname = 'app' AND regexp_replace(query, '\\s', '', 'g') = regexp_replace('${sql}', '\\s', '', 'g') ORDER BY state_change DESC LIMIT 1`,
        );
        const others: RawClient[] = [];
        for (let i = 0; i < s.pool && held.length === 0; i++) {
          const b = await blocker(port);
          (b.pid === target ? held : others).push(b.client);
        }
        release(others);
        if (held.length === 0) throw new Error(`no blocker got backend ${target}, the one that ran ${sql}`);
      } else {
        release(held);
      }
    }
    if (s.check) outcomes.push({ check: await pg.psql(fill(s.check), AS_APP) });
  } finally {
    release(held);
    for (const c of conns.values()) await c.close();
  }
  return outcomes;
}

/** Errors a direct connection may show in these scenarios; anything else means a scenario is broken. */
const EXPECTED_DIRECT_ERRORS = /^(0A000|42804|ERROR: {2}(cached plan must not change result type|column "name" is of type integer but expression is of type text)( at character \d+)?)$/;

for (const driver of DRIVERS) {
  describe(`${driver.name}: through pgbun as directly`, () => {
    SCENARIOS.forEach((s, i) => {
      const failing = !SELF_CHECK && (s.failing ?? []).includes(driver.name);
      (failing ? test.failing : test)(s.name, async () => {
        const t = `ddl${i}_${driver.name.replace(/\W/g, "").toLowerCase()}`;
        const direct = await play(s, driver, t, pg.port, false);
        for (const o of direct) {
          const error = (o as { error?: string }).error;
          if (error !== undefined) expect(error).toMatch(EXPECTED_DIRECT_ERRORS);
        }
        const pooler = s.pool === 1 ? pool1 : pool2;
        const through = await play(s, driver, t, SELF_CHECK ? pg.port : pooler.port, !SELF_CHECK);
        expect(through).toEqual(direct);
      });
    });
  });
}
