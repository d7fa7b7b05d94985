// Session parameters in transaction mode: every client sees its own settings whichever server it lands on.

import { afterAll, beforeAll, expect, test } from "bun:test";
import postgres from "postgres";
import { startPostgres, type PgInstance } from "./harness/postgres.ts";
import { startPgbun, type PgbunProcess } from "./harness/pgbun.ts";
import { msg, RawClient } from "./harness/raw-client.ts";

let pg: PgInstance;
let bouncer: PgbunProcess;

beforeAll(async () => {
  pg = await startPostgres();
  // one server shared by every client: any leak between clients would show
  bouncer = await startPgbun(["--upstream", pg.url("app", "apppass", "app"), "--pool-mode", "transaction", "--pool-size", "1"]);
});

afterAll(async () => {
  await bouncer.stop();
  await pg.stop();
});

const settings = "SELECT current_setting('TimeZone') AS tz, current_setting('DateStyle') AS ds, current_setting('application_name') AS app, current_setting('IntervalStyle') AS istyle";

test("clients see the server's parameters at login", async () => {
  const c = await RawClient.connect(bouncer.port);
  const m = await c.login("app", "app", "apppass");
  const names = m.filter((x) => x.tag === "S").map((x) => new TextDecoder().decode(x.body).split("\0")[0]);
  for (const n of ["client_encoding", "DateStyle", "TimeZone", "server_version", "standard_conforming_strings", "integer_datetimes"]) {
    expect(names).toContain(n);
  }
  c.close();
});

test("SET by one client does not leak to another sharing the server, and each keeps its own", async () => {
  const a = postgres(bouncer.url("app", "apppass", "app"), { max: 1, prepare: false, connection: { application_name: "client-a" } });
  const b = postgres(bouncer.url("app", "apppass", "app"), { max: 1, prepare: false, connection: { application_name: "client-b" } });
  await a`SET TimeZone = 'America/New_York'`;
  await a`SET DateStyle = 'German, DMY'`;
  await b`SET IntervalStyle = 'iso_8601'`;
  for (let i = 0; i < 5; i++) {
    const ra = { ...(await a.unsafe(settings))[0] };
    const rb = { ...(await b.unsafe(settings))[0] };
    expect(ra).toEqual({ tz: "America/New_York", ds: "German, DMY", app: "client-a", istyle: "postgres" });
    expect(rb).toEqual({ tz: "Etc/UTC", ds: "ISO, MDY", app: "client-b", istyle: "iso_8601" });
  }
  await Promise.all([a.end(), b.end()]);
});

test("startup parameters the pooler does not report are applied on the server (extra_float_digits, options, custom)", async () => {
  const c = await RawClient.connect(bouncer.port);
  await c.login("app", "app", "apppass", { extra_float_digits: "0", options: "-c statement_timeout=1234 -c myapp.tenant=t42" });
  c.send(msg.query("SELECT current_setting('extra_float_digits'), current_setting('statement_timeout'), current_setting('myapp.tenant')"));
  const out: string[] = [];
  for (;;) {
    const m = await c.next();
    if (m.tag === "D") out.push(new TextDecoder().decode(m.body));
    if (m.tag === "Z") break;
  }
  expect(out[0]).toContain("1234ms");
  expect(out[0]).toContain("t42");
  c.close();
  // the next client on the same server does not inherit them
  const d = postgres(bouncer.url("app", "apppass", "app"), { max: 1, prepare: false });
  const r = (await d`SELECT current_setting('statement_timeout') AS st, current_setting('myapp.tenant', true) AS t`)[0]!;
  expect(r.st).toBe("0");
  expect(r.t === null || r.t === "").toBe(true);
  await d.end();
});

test("psql sees its own client_encoding and application_name", async () => {
  const proc = Bun.spawn(["psql", "-X", "-A", "-t", "-h", "127.0.0.1", "-p", String(bouncer.port), "-U", "app", "-d", "app", "-c", "SHOW application_name"], {
    stdout: "pipe",
    env: { ...process.env, PGPASSWORD: "apppass", PGAPPNAME: "from-psql", PGCLIENTENCODING: "LATIN1" },
  });
  expect((await new Response(proc.stdout).text()).trim()).toBe("from-psql");
});

test("a list setting given at startup (search_path=a,b) keeps its list on every server, not one quoted name", async () => {
  await pg.psql("CREATE SCHEMA IF NOT EXISTS sa; CREATE SCHEMA IF NOT EXISTS sb", { user: "app", password: "apppass", db: "app" });
  const sql = postgres(bouncer.url("app", "apppass", "app"), { max: 1, prepare: false, connection: { search_path: "sa,sb" } });
  for (let i = 0; i < 4; i++) {
    const rows = await sql`SELECT current_setting('search_path') AS p, current_schemas(false)::text AS s`;
    expect(rows[0]!.p).toBe("sa,sb");
    expect(rows[0]!.s).toBe("{sa,sb}");
  }
  await sql.end();
});
