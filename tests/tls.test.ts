// TLS end to end: clients over TLS to pgbun (psql, postgres.js, Bun.sql, psycopg), pgbun over TLS to a PostgreSQL
// with ssl = on, SCRAM channel binding on both sides, certificate rotation, and every refusal with its reason.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import postgres from "postgres";
import { startupMessage } from "../src/protocol/messages.ts";
import { writeConfig } from "./harness/config-file.ts";
import { startPgbun, type PgbunProcess } from "./harness/pgbun.ts";
import { startPostgres, type PgInstance } from "./harness/postgres.ts";
import { RawClient } from "./harness/raw-client.ts";
import { makeCertificates, type TestCertificates } from "./harness/tls.ts";

let certs: TestCertificates;
/** ssl = on, reachable as 127.0.0.1 (named in its certificate) and 127.0.0.2 (not named). */
let pgTls: PgInstance;
/** ssl = off. */
let pgPlain: PgInstance;
const started: PgbunProcess[] = [];

const TLS_PG_HBA = `
hostnossl all tlsonly 127.0.0.1/32 reject
hostssl all certuser 127.0.0.1/32 cert
`;

beforeAll(async () => {
  certs = makeCertificates();
  [pgTls, pgPlain] = await Promise.all([
    startPostgres({ ssl: { certFile: certs.serverCert, keyFile: certs.serverKey, caFile: certs.ca }, hba: TLS_PG_HBA, listenAddresses: "127.0.0.1,127.0.0.2" }),
    startPostgres(),
  ]);
  await pgTls.psql("CREATE ROLE tlsonly LOGIN PASSWORD 'tlspass'; CREATE ROLE certuser LOGIN; GRANT CONNECT ON DATABASE app TO tlsonly, certuser");
});

afterAll(async () => {
  await Promise.all(started.map((p) => p.stop()));
  await Promise.all([pgTls.stop(), pgPlain.stop()]);
});

interface Options {
  /** [pgbun] lines. */
  pgbun?: string;
  pg?: PgInstance;
  host?: string;
  user?: string;
  password?: string;
  env?: Record<string, string>;
}

/** Config files by the pgbun that reads them, for tests that change and reload them. */
const configOf = new Map<PgbunProcess, string>();

/** The config of a pgbun in front of one database "app", with the TLS lines given. */
function configText(o: Options): string {
  const pg = o.pg ?? pgTls;
  const user = o.user ?? "app";
  const password = o.password === undefined ? 'password = "apppass"' : o.password === "" ? "" : `password = "${o.password}"`;
  return `[pgbun]
pool_mode = "transaction"
admin_users = ["app"]
stats_listen = "127.0.0.1:0"
server_connect_timeout = 5
${o.pgbun ?? ""}

[databases.app]
host = "${o.host ?? "127.0.0.1"}"
port = ${pg.port}
user = "${user}"
${password}

[users.app]
password = "apppass"
`;
}

async function pgbun(o: Options = {}): Promise<PgbunProcess> {
  const file = writeConfig(configText(o));
  const p = await startPgbun(["--config", file], { env: o.env });
  started.push(p);
  configOf.set(p, file);
  return p;
}

const clientTls = (mode: string) => `client_tls_sslmode = "${mode}"
client_tls_cert_file = "${certs.serverCert}"
client_tls_key_file = "${certs.serverKey}"
client_tls_ca_file = "${certs.ca}"`;

interface Run {
  code: number;
  out: string;
  err: string;
}

async function psql(port: number, conninfo: string, ...commands: string[]): Promise<Run> {
  const args = commands.flatMap((c) => ["-c", c]);
  const proc = Bun.spawn(["psql", "-X", "-A", "-t", `host=127.0.0.1 port=${port} user=app dbname=app connect_timeout=5 ${conninfo}`, ...args], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, PGPASSWORD: "apppass" },
  });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, out: out.trim(), err: err.trim() };
}

/** "tls" or "plain" as the client saw it (psql's \conninfo), or the error. */
async function howConnected(port: number, conninfo: string): Promise<string> {
  const r = await psql(port, conninfo, "\\conninfo");
  if (r.code !== 0) return `error: ${r.err}`;
  return r.out.includes("SSL connection (protocol: TLSv1.") ? "tls" : "plain";
}

const appCert = () => {
  const c = certs.clientCert("app");
  return `sslrootcert=${certs.ca} sslcert=${c.cert} sslkey=${c.key}`;
};

/** The HTTP port: its line is printed just after the listening line that startPgbun waits for. */
async function statsPort(p: PgbunProcess): Promise<string> {
  const line = /pgbun stats on http:\/\/127\.0\.0\.1:(\d+)/;
  await until("the stats line", () => line.test(p.output()));
  return line.exec(p.output())![1]!;
}

async function metrics(p: PgbunProcess): Promise<string> {
  return await (await fetch(`http://127.0.0.1:${await statsPort(p)}/metrics`)).text();
}

const metric = (text: string, name: string) => Number(new RegExp(`^pgbun_${name.replace(/[{}"]/g, (ch) => `\\${ch}`)} (\\S+)$`, "m").exec(text)?.[1] ?? NaN);

describe("clients to pgbun", () => {
  const modes = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"];
  /** One pgbun per client_tls_sslmode, shared by the matrix tests. */
  let matrix: Promise<PgbunProcess[]> | null = null;
  const matrixPgbuns = () => (matrix ??= Promise.all(modes.map((m) => pgbun({ pgbun: clientTls(m) }))));

  test("every client sslmode against every client_tls_sslmode (psql)", async () => {
    const pgbuns = await matrixPgbuns();
    const got: Record<string, string[]> = {};
    await Promise.all(
      modes.map(async (server, i) => {
        got[server] = [];
        for (const client of modes) got[server]!.push(await howConnected(pgbuns[i]!.port, `sslmode=${client} ${appCert()}`));
      }),
    );
    const refusedPlain = expect.stringContaining("TLS required (client_tls_sslmode)");
    const noSsl = expect.stringContaining("server does not support SSL");
    //                      client: disable   allow    prefer   require  verify-ca verify-full
    expect(got.disable).toEqual(["plain", "plain", "plain", noSsl, noSsl, noSsl]);
    expect(got.allow).toEqual(["plain", "plain", "tls", "tls", "tls", "tls"]);
    expect(got.prefer).toEqual(["plain", "plain", "tls", "tls", "tls", "tls"]);
    // libpq's allow tries plain text first and, refused, TLS.
    expect(got.require).toEqual([refusedPlain, "tls", "tls", "tls", "tls", "tls"]);
    expect(got["verify-ca"]).toEqual([refusedPlain, "tls", "tls", "tls", "tls", "tls"]);
    expect(got["verify-full"]).toEqual([refusedPlain, "tls", "tls", "tls", "tls", "tls"]);
  });

  test("psycopg with every sslmode, postgres.js and Bun.sql with theirs, against every client_tls_sslmode", async () => {
    const pgbuns = await matrixPgbuns();
    const ports = await Promise.all(pgbuns.map(async (p) => [p.port, await statsPort(p)]));
    const c = certs.clientCert("app");
    // psycopg (libpq): one Python process tries every sslmode against every pgbun; TLS or not from pgbun's handshake counter.
    const script = `
import json, sys, urllib.request, psycopg
def handshakes(stats):
    text = urllib.request.urlopen(f"http://127.0.0.1:{stats}/metrics").read().decode()
    return float([l for l in text.splitlines() if l.startswith('pgbun_tls_handshakes_total{side="client",result="ok"}')][0].split()[1])
out = {}
for port, stats in json.loads(sys.argv[1]):
    row = []
    for mode in ${JSON.stringify(modes)}:
        before = handshakes(stats)
        try:
            with psycopg.connect(f"host=127.0.0.1 port={port} user=app password=apppass dbname=app sslmode={mode} sslrootcert=${certs.ca} sslcert=${c.cert} sslkey=${c.key}") as conn:
                conn.execute("select 1")
            row.append("tls" if handshakes(stats) > before else "plain")
        except Exception as e:
            row.append("error")
    out[port] = row
print(json.dumps(out))
`;
    const py = Bun.spawn(["/usr/bin/python3", "-c", script, JSON.stringify(ports)], { stdout: "pipe", stderr: "pipe" });
    const [pyOut, pyErr] = await Promise.all([new Response(py.stdout).text(), new Response(py.stderr).text()]);
    expect(pyErr).toBe("");
    const psycopgGot = JSON.parse(pyOut) as Record<string, string[]>;
    expect(pgbuns.map((p) => psycopgGot[p.port])).toEqual([
      ["plain", "plain", "plain", "error", "error", "error"],
      ["plain", "plain", "tls", "tls", "tls", "tls"],
      ["plain", "plain", "tls", "tls", "tls", "tls"],
      ["error", "tls", "tls", "tls", "tls", "tls"],
      ["error", "tls", "tls", "tls", "tls", "tls"],
      ["error", "tls", "tls", "tls", "tls", "tls"],
    ]);

    // postgres.js and Bun.sql: no TLS, prefer, require, and verify-full with the CA and a client certificate.
    const verified = { ca: readFileSync(certs.ca, "utf8"), cert: readFileSync(c.cert, "utf8"), key: readFileSync(c.key, "utf8"), rejectUnauthorized: true };
    const jsModes: Array<[string, false | "prefer" | "require" | typeof verified]> = [["disable", false], ["prefer", "prefer"], ["require", "require"], ["verify-full", verified]];
    const counter = async (i: number) => metric(await metrics(pgbuns[i]!), 'tls_handshakes_total{side="client",result="ok"}');
    const attempt = async (i: number, connect: () => Promise<void>) => {
      const before = await counter(i);
      try {
        await connect();
      } catch {
        return "error";
      }
      return (await counter(i)) > before ? "tls" : "plain";
    };
    const drivers: Record<string, string[][]> = { "postgres.js": [], "Bun.sql": [] };
    for (const [i, p] of pgbuns.entries()) {
      const pjs: string[] = [];
      const bun: string[] = [];
      for (const [, ssl] of jsModes) {
        pjs.push(
          await attempt(i, async () => {
            const sql = postgres({ host: "localhost", port: p.port, user: "app", password: "apppass", database: "app", max: 1, ssl, connect_timeout: 5, onnotice: () => {} });
            try {
              await sql`SELECT 1`;
            } finally {
              await sql.end({ timeout: 1 });
            }
          }),
        );
        bun.push(
          await attempt(i, async () => {
            const sql = new Bun.SQL({ url: `postgres://app:apppass@localhost:${p.port}/app`, max: 1, connectionTimeout: 5, ...(ssl === false ? {} : { tls: ssl }) });
            try {
              await sql`SELECT 1`;
            } finally {
              await sql.close();
            }
          }),
        );
      }
      drivers["postgres.js"]!.push(pjs);
      drivers["Bun.sql"]!.push(bun);
    }
    //             client: none     prefer   require  verify-full with a certificate
    const expected = [
      ["plain", "plain", "error", "error"], // disable
      ["plain", "tls", "tls", "tls"], // allow
      ["plain", "tls", "tls", "tls"], // prefer
      ["error", "tls", "tls", "tls"], // require
      ["error", "error", "error", "tls"], // verify-ca: only the client with a certificate
      ["error", "error", "error", "tls"], // verify-full
    ];
    expect(drivers).toEqual({ "postgres.js": expected, "Bun.sql": expected });
  });

  test("verify-full: the right host name connects, a wrong one is refused by the client", async () => {
    const p = await pgbun({ pgbun: clientTls("require") });
    expect(await howConnected(p.port, `hostaddr=127.0.0.1 host=localhost sslmode=verify-full sslrootcert=${certs.ca}`)).toBe("tls");
    const wrong = await psql(p.port, `hostaddr=127.0.0.1 host=wrong.example sslmode=verify-full sslrootcert=${certs.ca}`, "SELECT 1");
    expect(wrong.code).not.toBe(0);
    expect(wrong.err).toContain('does not match host name "wrong.example"');
  });

  test("client certificates: one signed by client_tls_ca_file is accepted, none or a stranger's gets a FATAL naming why", async () => {
    const p = await pgbun({ pgbun: clientTls("verify-ca") });
    expect(await howConnected(p.port, `sslmode=require ${appCert()}`)).toBe("tls");
    const none = await psql(p.port, `sslmode=require sslrootcert=${certs.ca}`, "SELECT 1");
    expect(none.err).toContain("connection requires a valid client certificate (client_tls_sslmode = verify-ca)");
    const stranger = await psql(p.port, `sslmode=require sslrootcert=${certs.ca} sslcert=${certs.strangerCert} sslkey=${certs.strangerKey}`, "SELECT 1");
    expect(stranger.code).not.toBe(0);
    expect(stranger.err).toContain("client certificate rejected");
    const m = await metrics(p);
    expect(metric(m, 'tls_handshakes_total{side="client",result="failed"}')).toBe(2);
    expect(metric(m, 'tls_handshakes_total{side="client",result="ok"}')).toBeGreaterThanOrEqual(1);
    expect(p.output()).toContain("TLS handshake failed");
  });

  test("channel_binding=require works over TLS (psql, psycopg); plain text is never offered SCRAM-SHA-256-PLUS", async () => {
    const p = await pgbun({ pgbun: clientTls("prefer") });
    const bound = await psql(p.port, `sslmode=verify-full sslrootcert=${certs.ca} channel_binding=require`, "SELECT current_user");
    expect(bound).toMatchObject({ code: 0, out: "app" });
    const py = Bun.spawn(
      [
        "/usr/bin/python3",
        "-c",
        "import sys, psycopg\nwith psycopg.connect(sys.argv[1]) as c:\n  print(c.pgconn.ssl_in_use, c.execute('select 7').fetchone()[0])",
        `host=127.0.0.1 port=${p.port} user=app password=apppass dbname=app sslmode=verify-full sslrootcert=${certs.ca} channel_binding=require`,
      ],
      { stdout: "pipe", stderr: "pipe" },
    );
    const [pyOut, pyErr] = await Promise.all([new Response(py.stdout).text(), new Response(py.stderr).text()]);
    expect(pyErr).toBe("");
    expect(pyOut.trim()).toBe("True 7");
    const plain = await psql(p.port, "sslmode=disable channel_binding=require", "SELECT 1");
    expect(plain.code).not.toBe(0);
    // What pgbun offers a plain-text client, as sent.
    const raw = await RawClient.connect(p.port);
    raw.send(startupMessage({ user: "app", database: "app" }));
    const auth = await raw.next();
    raw.close();
    expect(auth.tag).toBe("R");
    const offered = new TextDecoder().decode(auth.body.subarray(4)).split("\0").filter((s) => s !== "");
    expect(offered).toEqual(["SCRAM-SHA-256"]);
  });

  test("postgres.js and Bun.sql log in and query over TLS, with the server certificate verified", async () => {
    const p = await pgbun({ pgbun: clientTls("require") });
    const sql = postgres({ host: "localhost", port: p.port, user: "app", password: "apppass", database: "app", max: 2, ssl: { ca: readFileSync(certs.ca, "utf8"), rejectUnauthorized: true } });
    try {
      const rows = await Promise.all([1, 2, 3].map((n) => sql`SELECT ${n}::int AS n`));
      expect(rows.map((r) => r[0]!.n)).toEqual([1, 2, 3]);
    } finally {
      await sql.end();
    }
    const bun = new Bun.SQL({ url: `postgres://app:apppass@localhost:${p.port}/app`, tls: { ca: readFileSync(certs.ca, "utf8"), rejectUnauthorized: true }, max: 1 });
    try {
      expect((await bun`SELECT 41 + 1 AS n`)[0].n).toBe(42);
    } finally {
      await bun.close();
    }
    // And each client was really on TLS: SHOW CLIENTS' tls column.
    const admin = await psql(p.port, "sslmode=require dbname=pgbun", "SHOW CLIENTS");
    expect(admin.out).toMatch(/\|TLSv1\.[23]\/[A-Z0-9_-]+\|/);
    expect(p.output()).toMatch(/TLS established .*tls=TLSv1\.[23]/);
  });

  test("plain text after SSLRequest, before the handshake, closes the connection without an answer", async () => {
    const p = await pgbun({ pgbun: clientTls("prefer") });
    const sslRequest = new Uint8Array([0, 0, 0, 8, 4, 210, 22, 47]);
    for (const tail of [startupMessage({ user: "app", database: "app" }), new Uint8Array([0, 0])]) {
      const got: number[] = [];
      let closed = false;
      const s = await Bun.connect({ hostname: "127.0.0.1", port: p.port, socket: { data: (_s, d) => void got.push(...d), close: () => void (closed = true) } });
      const both = new Uint8Array(sslRequest.length + tail.length);
      both.set(sslRequest);
      both.set(tail, sslRequest.length);
      s.write(both);
      for (let i = 0; i < 100 && !closed; i++) await Bun.sleep(20);
      expect(closed).toBe(true);
      expect(got).toEqual([]);
    }
    expect(p.output()).toContain("after SSLRequest, before the TLS handshake: connection closed");
  });

  test("GSSENCRequest is answered N with client TLS on", async () => {
    const p = await pgbun({ pgbun: clientTls("require") });
    const got: number[] = [];
    const s = await Bun.connect({ hostname: "127.0.0.1", port: p.port, socket: { data: (_s, d) => void got.push(...d) } });
    s.write(new Uint8Array([0, 0, 0, 8, 4, 210, 22, 48]));
    for (let i = 0; i < 100 && got.length === 0; i++) await Bun.sleep(20);
    s.end();
    expect(got).toEqual([0x4e]);
  });

  test("PostgreSQL 17's direct TLS (openssl s_client -alpn postgresql) reaches the login; without ALPN it is refused", async () => {
    const p = await pgbun({ pgbun: clientTls("require") });
    const directly = async (alpn: string[]) => {
      const proc = Bun.spawn(["openssl", "s_client", "-connect", `127.0.0.1:${p.port}`, ...alpn, "-CAfile", certs.ca, "-verify_return_error", "-brief"], {
        stdin: "pipe",
        stdout: "pipe",
        stderr: "pipe",
      });
      proc.stdin.write(startupMessage({ user: "app", database: "app" }));
      proc.stdin.flush();
      await Bun.sleep(500);
      proc.stdin.end();
      const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
      return { out, err };
    };
    const withAlpn = await directly(["-alpn", "postgresql"]);
    expect(withAlpn.err).toContain("Verification: OK");
    // AuthenticationSASL, with channel binding offered over this TLS connection.
    expect(withAlpn.out).toContain("SCRAM-SHA-256-PLUS");
    const without = await directly([]);
    expect(without.out).toContain("without ALPN");
  });

  test("bad TLS settings stop pgbun with one line naming the setting (file, flag and environment)", async () => {
    const run = async (args: string[], env: Record<string, string> = {}) => {
      const proc = Bun.spawn([process.execPath, "src/main.ts", "--upstream", pgPlain.url("app", "apppass", "app"), "--listen", "127.0.0.1:0", ...args], {
        cwd: join(import.meta.dir, ".."),
        stdout: "pipe",
        stderr: "pipe",
        env: { ...process.env, ...env },
      });
      const [err, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
      return { code, err: err.trim() };
    };
    const cases: Array<[string[], Record<string, string>, string]> = [
      [[], { PGBUN_CLIENT_TLS_SSLMODE: "require" }, "client_tls_sslmode = require needs a certificate and its key: set client_tls_cert_file"],
      [["--client-tls-sslmode", "prefer", "--client-tls-cert-file", certs.serverCert, "--client-tls-key-file", "/nonexistent/key.pem"], {}, 'client_tls_key_file "/nonexistent/key.pem" cannot be read (ENOENT'],
      [["--client-tls-sslmode", "prefer", "--client-tls-cert-file", certs.serverCert, "--client-tls-key-file", certs.rotatedKey], {}, "client_tls_key_file"],
      [["--client-tls-sslmode", "verify-ca", "--client-tls-cert-file", certs.serverCert, "--client-tls-key-file", certs.serverKey], {}, "client_tls_ca_file"],
      [["--server-tls-protocols", "tlsv9"], {}, 'invalid value "tlsv9" for server_tls_protocols'],
      [["--client-tls-sslmode", "sometimes"], {}, "client_tls_sslmode"],
    ];
    for (const [args, env, want] of cases) {
      const r = await run(args, env);
      expect(r.code).toBe(2);
      expect(r.err).toContain(want);
      expect(r.err.split("\n")).toHaveLength(1);
    }
  });
});

describe("pgbun to PostgreSQL", () => {
  const serverSsl = async (p: PgbunProcess) => {
    const r = await psql(p.port, "sslmode=disable", "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()");
    return r.code === 0 ? r.out : `error: ${r.err}`;
  };
  const serverTls = (mode: string, ca = certs.ca) => `server_tls_sslmode = "${mode}"\nserver_tls_ca_file = "${ca}"`;

  test("pg_stat_ssl shows each server_tls_sslmode's choice; SHOW SERVERS and /metrics say which servers use TLS", async () => {
    const modes = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"];
    const ps = await Promise.all(modes.map((m) => pgbun({ pgbun: serverTls(m) })));
    const got = await Promise.all(ps.map(serverSsl));
    expect(Object.fromEntries(modes.map((m, i) => [m, got[i]]))).toEqual({ disable: "f", allow: "f", prefer: "t", require: "t", "verify-ca": "t", "verify-full": "t" });
    const servers = await psql(ps[2]!.port, "sslmode=disable dbname=pgbun", "SHOW SERVERS");
    expect(servers.out).toMatch(/\|TLSv1\.[23]\/[A-Z0-9_-]+\|/);
    const plainServers = await psql(ps[0]!.port, "sslmode=disable dbname=pgbun", "SHOW SERVERS");
    expect(plainServers.out).not.toContain("TLSv1");
    const m = await metrics(ps[2]!);
    expect(metric(m, 'connections_by_encryption{side="server",tls="true"}')).toBe(1);
    expect(metric(m, 'tls_handshakes_total{side="server",result="ok"}')).toBe(1);
  });

  test("verify-full refuses a host its certificate does not name, verify-ca accepts it, and a certificate from an untrusted CA is refused", async () => {
    const [full, ca, untrusted] = await Promise.all([
      pgbun({ pgbun: serverTls("verify-full"), host: "127.0.0.2" }),
      pgbun({ pgbun: serverTls("verify-ca"), host: "127.0.0.2" }),
      pgbun({ pgbun: serverTls("verify-ca", certs.otherCa) }),
    ]);
    expect(await serverSsl(full)).toContain("does not name this host (server_tls_sslmode = verify-full)");
    expect(await serverSsl(ca)).toBe("t");
    expect(await serverSsl(untrusted)).toContain("not trusted (server_tls_sslmode = verify-ca, server_tls_ca_file)");
    expect(metric(await metrics(full), 'tls_handshakes_total{side="server",result="failed"}')).toBeGreaterThanOrEqual(1);
  });

  test("require refuses a server without TLS, prefer falls back to plain text, allow tries TLS when plain text is refused", async () => {
    const [require, prefer, allow, disable] = await Promise.all([
      pgbun({ pgbun: serverTls("require"), pg: pgPlain }),
      pgbun({ pgbun: serverTls("prefer"), pg: pgPlain }),
      pgbun({ pgbun: serverTls("allow"), user: "tlsonly", password: "tlspass" }),
      pgbun({ pgbun: serverTls("disable"), user: "tlsonly", password: "tlspass" }),
    ]);
    expect(await serverSsl(require)).toContain("the server does not support TLS, and server_tls_sslmode = require refuses plain text");
    expect(await serverSsl(prefer)).toBe("f");
    expect(await serverSsl(allow)).toBe("t");
    expect(await serverSsl(disable)).toContain("no encryption");
  });

  test("the health check logs in over TLS too: /healthz is up for a role PostgreSQL refuses in plain text", async () => {
    const p = await pgbun({ pgbun: serverTls("require"), user: "tlsonly", password: "tlspass" });
    const port = await statsPort(p);
    let last = "";
    for (let i = 0; i < 100; i++) {
      const r = await fetch(`http://127.0.0.1:${port}/healthz`);
      last = `${r.status} ${await r.text()}`;
      if (r.status === 200) break;
      await Bun.sleep(100);
    }
    expect(last).toStartWith("200");
  });

  test("a reload that changes server_tls_sslmode replaces the servers: the next transaction runs over TLS", async () => {
    const p = await pgbun({ pgbun: serverTls("disable") });
    expect(await serverSsl(p)).toBe("f");
    writeConfig(configText({ pgbun: serverTls("require") }), configOf.get(p));
    p.proc.kill("SIGHUP");
    await until("the reload", () => p.output().includes("server_tls_* changed"));
    expect(await serverSsl(p)).toBe("t");
  });

  test("server_tls_cert_file logs in with PostgreSQL's cert method", async () => {
    const c = certs.clientCert("certuser");
    const p = await pgbun({ pgbun: `${serverTls("verify-full")}\nserver_tls_cert_file = "${c.cert}"\nserver_tls_key_file = "${c.key}"`, user: "certuser", password: "" });
    const r = await psql(p.port, "sslmode=disable", "SELECT current_user");
    expect(r).toMatchObject({ code: 0, out: "certuser" });
  });
});

/** The SHA-256 fingerprint of the certificate pgbun shows a new TLS client. */
function peerFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let answered = false;
    Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        open: (s) => void s.write(new Uint8Array([0, 0, 0, 8, 4, 210, 22, 47])),
        data(s, d) {
          // The plain socket's handler keeps getting the ciphertext after the upgrade.
          if (answered) return;
          answered = true;
          if (d[0] !== 0x53) return reject(new Error(`SSLRequest answered ${d[0]}`));
          s.upgradeTLS({
            tls: { ca: readFileSync(certs.ca, "utf8"), serverName: "localhost" },
            socket: {
              data() {},
              handshake(t, ok, err) {
                if (!ok) reject(err);
                else resolve(t.getPeerX509Certificate().fingerprint256);
                t.end();
              },
            },
          });
        },
        error: (_s, err) => reject(err),
      },
    }).catch(reject);
  });
}

const fingerprintOf = (file: string) => new X509Certificate(readFileSync(file)).fingerprint256;

async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 250 && !ok(); i++) await Bun.sleep(20);
  if (!ok()) throw new Error(`timed out waiting for ${what}`);
}

describe("certificate rotation", () => {
  test("SIGHUP under load: new handshakes get the new certificate and no client is dropped; a bad new key leaves the old one in force", async () => {
    const cert = join(certs.dir, "live.crt");
    const key = join(certs.dir, "live.key");
    copyFileSync(certs.serverCert, cert);
    copyFileSync(certs.serverKey, key);
    const p = await pgbun({ pgbun: `client_tls_sslmode = "require"\nclient_tls_cert_file = "${cert}"\nclient_tls_key_file = "${key}"` });
    expect(await peerFingerprint(p.port)).toBe(fingerprintOf(certs.serverCert));

    const sql = postgres({ host: "127.0.0.1", port: p.port, user: "app", password: "apppass", database: "app", max: 8, ssl: { ca: readFileSync(certs.ca, "utf8"), servername: "localhost" } });
    let stop = false;
    let queries = 0;
    const errors: string[] = [];
    const loops = Array.from({ length: 8 }, async () => {
      while (!stop) {
        try {
          await sql`SELECT 1`;
          queries++;
        } catch (err) {
          errors.push((err as Error).message);
        }
      }
    });
    try {
      await until("load", () => queries > 50);
      copyFileSync(certs.rotatedCert, cert);
      copyFileSync(certs.rotatedKey, key);
      p.proc.kill("SIGHUP");
      await until("the reload", () => p.output().includes("client TLS files loaded"));
      expect(await peerFingerprint(p.port)).toBe(fingerprintOf(certs.rotatedCert));

      writeFileSync(key, "not a key\n");
      p.proc.kill("SIGHUP");
      await until("the refusal", () => p.output().includes("reload refused"));
      expect(p.output()).toMatch(/reload refused.*client_tls_key_file .*live\.key\\?" is not a PEM private key/);
      expect(await peerFingerprint(p.port)).toBe(fingerprintOf(certs.rotatedCert));
      const during = queries;
      await until("more load", () => queries > during + 50);
    } finally {
      stop = true;
      await Promise.all(loops);
    }
    expect(errors).toEqual([]);
    // Each of postgres.js's connections (at most 8) logged in once and stayed.
    expect(p.output().match(/INFO client: login /g)?.length).toBeLessThanOrEqual(8);
    expect(p.output()).not.toContain("INFO client: disconnect");
    await sql.end();
  });
});
