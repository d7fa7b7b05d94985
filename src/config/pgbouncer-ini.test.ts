import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseAuthFile } from "./auth-file.ts";
import { loadConfig } from "./load.ts";
import { readPgbouncerIni } from "./pgbouncer-ini.ts";

const dir = mkdtempSync(join(tmpdir(), "pgbun-ini-unit-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function ini(files: Record<string, string>) {
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return readPgbouncerIni("main.ini", "flag", dir);
}

describe("pgbouncer.ini", () => {
  test("connection strings: quoted values, no host meaning the Unix socket, host lists, quoted database names", () => {
    const c = ini({
      "main.ini": `[databases]
a = host=db1 port=5433 dbname='my db' user=u password='it\\'s' pool_size=7 pool_mode=Transaction
b =
"c d" = host=db1,db2 auth_user=lookup
[pgbouncer]
listen_addr = *,::1
unix_socket_dir = /run/pg
`,
    });
    expect(c.databases.get("a")).toEqual({ name: "a", host: "db1", port: 5433, dbname: "my db", user: "u", password: "it's", pool_size: 7, pool_mode: "transaction" });
    expect(c.databases.get("b")).toMatchObject({ host: "/run/pg", port: 5432, dbname: "b" });
    expect(c.databases.get("c d")).toMatchObject({ host: "db1", auth_user: "lookup", dbname: "c d" });
    expect(c.pgbun.listen).toBe("*:6432");
    expect(c.notices).toEqual([
      expect.stringContaining("listen_addr = *,::1"),
      expect.stringContaining("[databases] c d: host=db1,db2"),
    ]);
  });

  test("PgBouncer's defaults where pgbun's differ; %include in place; a later line wins", () => {
    const c = ini({ "main.ini": "[pgbouncer]\nlisten_port = 7000\npool_mode = session\n%include more.ini\n", "more.ini": "pool_mode = transaction\n" });
    expect(c.pgbun).toEqual({ auth_type: "md5", unix_socket_dir: "/tmp", listen: "127.0.0.1:7000", pool_mode: "transaction" });
    expect(c.notices[0]).toContain("listen_addr is not set");
  });

  test("an %include loop, an unknown section and a broken quote are errors naming the place", () => {
    expect(() => ini({ "main.ini": "%include loop.ini\n", "loop.ini": "%include main.ini\n" })).toThrow("%include loop");
    expect(() => ini({ "main.ini": "[pgbouncer]\n[extra]\n" })).toThrow(`${join(dir, "main.ini")}:2: unknown section [extra]`);
    expect(() => ini({ "main.ini": "[databases]\na = password='x\n" })).toThrow("an unclosed quote");
    expect(() => ini({ "main.ini": "[databases]\na = password=x\n" })).toThrow("database a: password= needs user=: add user=NAME to its connection string");
  });

  test("[users] keys pgbun carries out are kept, the others reported", () => {
    const c = ini({ "main.ini": "[users]\nalice = pool_mode=session auth_type=plain query_timeout=5\n[pgbouncer]\nlisten_addr = 127.0.0.1\n" });
    expect(c.users.get("alice")).toEqual({ name: "alice", pool_mode: "session", auth_type: "plain" });
    expect(c.notices).toEqual([expect.stringContaining("[users] alice: query_timeout=5")]);
  });
});

describe("choosing the file", () => {
  test("--pgbouncer-ini, --config with a .ini file and PGBUN_PGBOUNCER_INI read the ini; naming two files is an error", () => {
    writeFileSync(join(dir, "pick.ini"), "[databases]\napp = host=db port=5433\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = 7001\n");
    for (const [argv, env] of [
      [["--pgbouncer-ini", "pick.ini"], {}],
      [["--config", "pick.ini"], {}],
      [[], { PGBUN_PGBOUNCER_INI: "pick.ini" }],
    ] as const) {
      const c = loadConfig({ argv: [...argv], env, cwd: dir });
      expect(c.settings.listen).toEqual({ host: "127.0.0.1", port: 7001 });
      expect(c.databases.get("app")).toMatchObject({ host: "db", port: 5433 });
    }
    // Flags still beat the file.
    expect(loadConfig({ argv: ["--pgbouncer-ini", "pick.ini", "--listen", "127.0.0.1:7002"], env: {}, cwd: dir }).settings.listen.port).toBe(7002);
    expect(() => loadConfig({ argv: ["--pgbouncer-ini", "pick.ini", "--config", "x.toml"], env: {}, cwd: dir })).toThrow("--config and --pgbouncer-ini both name a config file: give one");
  });
});

describe("auth_file", () => {
  test('fields in double quotes with "" for a quote, comments, extra fields ignored, a later line winning', () => {
    const users = parseAuthFile(';c\n# c\n"a""b" "p""w" ignored\n"x" "1"\n"x" "2"\n', "users.txt");
    expect([...users]).toEqual([
      ['a"b', 'p"w'],
      ["x", "2"],
    ]);
    expect(() => parseAuthFile('"x" "md5ABCDEF0123456789ABCDEF0123456789"\n', "users.txt")).toThrow('auth_file line users.txt:1: the secret of user "x" is malformed');
  });
});
