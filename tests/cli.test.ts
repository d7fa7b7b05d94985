// The command line as users meet it: exit codes, one-line errors without stack traces, the listening line.

import { expect, test } from "bun:test";
import { REPO_ROOT } from "./harness/pgbun.ts";

function pgbun(args: string[], env: Record<string, string> = {}) {
  const r = Bun.spawnSync([process.execPath, "src/main.ts", ...args], { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
}

test("a bad flag value exits 2 with one line and no stack trace", () => {
  const r = pgbun(["--upstream", "postgres://a:b@127.0.0.1/x", "--pool-mode", "bogus"]);
  expect(r.code).toBe(2);
  expect(r.err.trim().split("\n")).toHaveLength(1);
  expect(r.err).toContain("pool_mode");
  expect(r.err).not.toContain("    at ");
});

test("a bad environment value exits 2 naming the variable", () => {
  const r = pgbun(["--upstream", "postgres://a:b@127.0.0.1/x"], { PGBUN_MAX_CLIENT_CONN: "lots" });
  expect(r.code).toBe(2);
  expect(r.err).toContain("PGBUN_MAX_CLIENT_CONN");
});

test("no database at all exits 2 and says how to give one", () => {
  const r = pgbun([]);
  expect(r.code).toBe(2);
  expect(r.err).toContain("--upstream");
});

test("--version and --help exit 0", () => {
  expect(pgbun(["--version"]).out).toMatch(/^pgbun \d+\.\d+\.\d+\n$/);
  const h = pgbun(["--help"]);
  expect(h.code).toBe(0);
  expect(h.out).toContain("--default-pool-size");
});

test("a port already in use is a clear error, not a stack trace", async () => {
  const holder = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const r = pgbun(["--upstream", "postgres://a:b@127.0.0.1/x", "--listen", `127.0.0.1:${holder.port}`]);
  holder.stop(true);
  expect(r.code).toBe(1);
  expect(r.err).toContain("cannot listen on");
  expect(r.err).not.toContain("    at ");
});
