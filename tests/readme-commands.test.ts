// Every command the README, `npm run dev` and the load scripts' --help tell a user to type works after `npm ci` with
// only Node.js and npm installed: bun is not on PATH then, so it is `npx bun ...` or `npm run ...`. The runnable ones run.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { devBanner, missingBinaries } from "../scripts/dev-banner.ts";
import { atEnd } from "./harness/cleanup.ts";
import { writeConfig } from "./harness/config-file.ts";
import { REPO_ROOT, startPgbun, type PgbunProcess } from "./harness/pgbun.ts";
import { startPostgres, type PgInstance } from "./harness/postgres.ts";
import { prepareStackDatabase, stackConfigText } from "./harness/stack.ts";

const README = readFileSync(join(REPO_ROOT, "README.md"), "utf8");
const pkg = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> };

/** Programs the README names as prerequisites or alternatives (PostgreSQL's client, Docker, kubectl, the shell's own). */
const EXTERNAL = new Set(["psql", "curl", "docker", "cp", "bash", "apt-get", "brew", "pgbench", "kubectl"]);
/** Inline mentions of bun that describe what runs inside an image or under `npm run dev`, not what to type. */
const DESCRIBED = new Set(["bun install --frozen-lockfile", "bun build --compile src/main.ts --outfile dist/pgbun", "bun run", "bun --watch", "bun --watch src/main.ts"]);

/** Splits a command line into words, keeping double- or single-quoted words whole. */
function words(line: string): string[] {
  return [...line.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3]!);
}

/** The README's sh code blocks: one command per line, comments dropped, `a && b` split. */
function fencedCommands(md: string): string[] {
  const out: string[] = [];
  for (const block of md.matchAll(/```sh\n([\s\S]*?)```/g)) {
    for (const raw of block[1]!.split("\n")) {
      const line = raw.replace(/\s+#.*$/, "").trim();
      if (line === "" || line.startsWith("#")) continue;
      out.push(...line.split("&&").map((c) => c.trim()));
    }
  }
  return out;
}

/** Inline code in the README's prose (outside code blocks) that starts with npx, npm or bun; not the bare names. */
function inlineCommands(md: string): string[] {
  const prose = md.replace(/```[\s\S]*?```/g, "");
  const names = new Set(["npm", "npx bun", "bun"]);
  return [...prose.matchAll(/`([^`\n]+)`/g)].map((m) => m[1]!.trim()).filter((c) => /^(npx|npm|bun)(\s|$)/.test(c) && !names.has(c));
}

/** Why this command would not run on a machine with only Node.js and npm after `npm ci`; null when it would. */
function problem(command: string): string | null {
  const [first, ...rest] = words(command);
  if (first === undefined) return "empty";
  if (first === "npx") {
    if (rest[0] !== "bun") return `npx ${rest[0]}: only bun comes with npm ci`;
    const [what, arg] = [rest[1], rest[2]];
    if (what === "run") return arg !== undefined && (arg in pkg.scripts || existsSync(join(REPO_ROOT, arg))) ? null : `npx bun run ${arg}: no such package.json script or file`;
    if (what === "install" || what?.startsWith("-")) return null;
    return what !== undefined && existsSync(join(REPO_ROOT, what)) ? null : `npx bun ${what}: no such file`;
  }
  if (first === "npm") {
    const args = rest.filter((w) => !w.startsWith("-"));
    if (args[0] === "ci" || args[0] === "test" || args[0] === "install") return null;
    if (args[0] === "run") return args[1] !== undefined && args[1] in pkg.scripts ? null : `npm run ${args[1]}: no such package.json script`;
    return `npm ${args[0]}: not a command the README should need`;
  }
  if (EXTERNAL.has(first)) return null;
  if (first.includes("/") && existsSync(join(REPO_ROOT, first))) return null;
  return `begins with ${first}, which is not on PATH after npm ci (use npx bun or npm run)`;
}

describe("README commands", () => {
  test("every command in a code block starts with npx bun, npm or a named tool, and names scripts and files that exist", () => {
    const commands = fencedCommands(README);
    expect(commands.length).toBeGreaterThan(15);
    expect(commands.filter((c) => /\bload-test\b/.test(c)).length).toBeGreaterThanOrEqual(3);
    expect(commands.map((c) => ({ c, problem: problem(c) })).filter((x) => x.problem !== null)).toEqual([]);
  });

  test("inline commands in the prose do too; bare `bun` appears only where it describes what runs inside an image", () => {
    const inline = inlineCommands(README);
    const bare = inline.filter((c) => c.startsWith("bun") && !DESCRIBED.has(c));
    expect(bare).toEqual([]);
    const checked = inline.filter((c) => !c.startsWith("bun"));
    expect(checked.length).toBeGreaterThan(5);
    expect(checked.map((c) => ({ c, problem: problem(c) })).filter((x) => x.problem !== null)).toEqual([]);
  });

  test("Run it says how to turn on the admin console and the HTTP endpoint, with the real setting names", () => {
    const runIt = README.slice(README.indexOf("## Run it"), README.indexOf("\n## ", README.indexOf("## Run it") + 3));
    for (const flag of ["--admin-users", "--stats-listen"]) expect(runIt).toContain(flag);
    for (const key of ["admin_users", "stats_users", "stats_listen"]) expect(runIt).toContain(key);
    const help = Bun.spawnSync([process.execPath, "src/main.ts", "--help"], { cwd: REPO_ROOT, stdout: "pipe" }).stdout.toString();
    for (const flag of ["--admin-users", "--stats-users", "--stats-listen"]) expect(help).toContain(flag);
  });

  test("npm run -s load-test is documented for clean JSON on stdout", () => {
    expect(fencedCommands(README).some((c) => c.startsWith("npm run -s load-test"))).toBe(true);
  });
});

describe("what npm run dev and the load scripts print", () => {
  test("the dev banner's and the missing-PostgreSQL message's commands all start with npx bun or a named tool", () => {
    const text = devBanner({ pgPort: 55432, listen: "127.0.0.1:6432", statsListen: "127.0.0.1:6480" }) + missingBinaries(["initdb"]);
    const commands = [...text.matchAll(/(?:^|\s{2,})((?:npx|npm|psql|curl|docker|bun) .*?)(?=\s{2,}|$)/gm)].map((m) => m[1]!.trim());
    expect(commands.filter((c) => c.startsWith("npx bun")).length).toBeGreaterThanOrEqual(3);
    expect(commands.map((c) => ({ c, problem: problem(c) })).filter((x) => x.problem !== null)).toEqual([]);
  });

  test("load-test.js and transaction-test.js --help show how to run them with npx bun or npm run", () => {
    for (const script of ["load-test.js", "transaction-test.js"]) {
      const help = Bun.spawnSync([process.execPath, `tests/${script}`, "--help"], { cwd: REPO_ROOT, stdout: "pipe" }).stdout.toString();
      const usage = help.slice(help.indexOf("Usage:"), help.indexOf("Flags"));
      const commands = usage.split("\n").slice(1).map((l) => l.trim().split(/\s{2,}/)[0]!).filter((c) => c !== "");
      expect(commands.some((c) => c.startsWith(`npx bun tests/${script}`))).toBe(true);
      expect(commands.map((c) => ({ c, problem: problem(c.replace(" [flags]", "")) })).filter((x) => x.problem !== null)).toEqual([]);
    }
  });
});

describe("running them against a real pgbun with the stack's config", () => {
  let pg: PgInstance;
  let bouncer: PgbunProcess;
  let statsUrl: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    pg = await startPostgres();
    await prepareStackDatabase(pg);
    const text = stackConfigText({ listen: "127.0.0.1:0", statsListen: "127.0.0.1:0", pgHost: "127.0.0.1", pgPort: pg.port });
    bouncer = await startPgbun(["--config", writeConfig(text)]);
    let m: RegExpMatchArray | null = null;
    for (let i = 0; i < 100 && !(m = bouncer.output().match(/pgbun stats on (http:\/\/[\d.]+:\d+)/)); i++) await Bun.sleep(20);
    if (!m) throw new Error(`pgbun printed no stats address:\n${bouncer.output()}`);
    statsUrl = m[1]!;
    // The README's commands take their flags as written; where they leave one out, these stand in (flags win).
    env = {
      PGBUN_HOST: "127.0.0.1",
      PGBUN_PORT: String(bouncer.port),
      PGBUN_STATS_URL: statsUrl,
      PGBUN_DURATION: "1",
      PGBUN_CONCURRENCY: "5",
      PGBUN_CLIENT_IDLE_TIMEOUT_SECONDS: "0",
    };
  });

  afterAll(async () => {
    await bouncer?.stop();
    await pg?.stop();
  });

  async function sh(command: string, extraEnv: Record<string, string> = {}) {
    const proc = Bun.spawn(["sh", "-c", command], { cwd: REPO_ROOT, stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, ...env, ...extraEnv } });
    const killer = setTimeout(() => proc.kill("SIGKILL"), 45_000);
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    clearTimeout(killer);
    return { out, err, code };
  }

  test("the README's load-test and transaction-test commands run as written and print one JSON object", async () => {
    const runnable = fencedCommands(README).filter((c) => /^(npx bun tests\/(load|transaction)-test\.js|npm run -s load-test)/.test(c) && !c.includes("["));
    expect(runnable.length).toBeGreaterThanOrEqual(2);
    const dir = mkdtempSync(join(tmpdir(), "pgbun-readme-"));
    atEnd(() => rmSync(dir, { recursive: true, force: true }));
    for (const command of runnable) {
      // A file the README writes goes to a temporary folder here instead of the shared working tree.
      const r = await sh(command.replace(/--out=\S+/, `--out=${join(dir, "out.json")}`));
      expect({ command, code: r.code, err: r.code === 0 ? "" : r.err }).toEqual({ command, code: 0, err: "" });
      expect(() => JSON.parse(r.out)).not.toThrow();
    }
  });

  test("npm run load-test puts npm's header on stdout; -s leaves clean JSON; --out writes valid JSON to a file either way", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pgbun-readme-"));
    atEnd(() => rmSync(dir, { recursive: true, force: true }));
    const out = join(dir, "result.json");
    const loud = await sh(`npm run load-test -- --out ${out}`);
    expect(loud.code).toBe(0);
    expect(() => JSON.parse(loud.out)).toThrow();
    expect(JSON.parse(readFileSync(out, "utf8"))).toMatchObject({ mode: "transaction", concurrency: 5, errors: 0 });
    const quiet = await sh(`npm run -s load-test -- --mode=statement --out ${out}`);
    expect(quiet.code).toBe(0);
    expect(JSON.parse(quiet.out)).toEqual(JSON.parse(readFileSync(out, "utf8")));
  });

  test("the dev banner's commands reach a pgbun at the addresses it was given", async () => {
    const banner = devBanner({ pgPort: pg.port, listen: `127.0.0.1:${bouncer.port}`, statsListen: statsUrl.replace("http://", "") });
    const line = (label: string) => banner.split("\n").find((l) => l.trimStart().startsWith(label))!.trim().slice(label.length).trim();
    for (const label of ["load test", "boundaries"]) {
      // Only the environment's defaults for what the banner leaves out: the address must come from the banner itself.
      const r = await sh(line(label), { PGBUN_PORT: "9", PGBUN_STATS_URL: "http://127.0.0.1:9" });
      expect({ label, code: r.code, err: r.code === 0 ? "" : r.err }).toEqual({ label, code: 0, err: "" });
      expect(() => JSON.parse(r.out)).not.toThrow();
    }
    const admin = await sh(line("admin"));
    expect({ code: admin.code, err: admin.err }).toEqual({ code: 0, err: "" });
    expect(admin.out).toContain("cl_active");
    const stats = await sh(line("stats"));
    expect(stats.code).toBe(0);
    expect(JSON.parse(stats.out).pools).toBeDefined();
  });
});
