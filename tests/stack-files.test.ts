// The Docker stack's files agree with each other and with the repo.
// Every file, port, variable and command that docker-compose.yml and the Dockerfiles name exists and matches
// .env.example, config/pgbun.toml, package.json and the lockfiles.

import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, copyFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, posix } from "node:path";
import { atEnd } from "./harness/cleanup.ts";
import { REPO_ROOT } from "./harness/pgbun.ts";
import { parseCli } from "../src/cli.ts";
import { FLAGS, envName } from "./load-options.js";

const read = (path: string) => readFileSync(join(REPO_ROOT, path), "utf8");
const exists = (path: string) => existsSync(join(REPO_ROOT, path));

interface Service {
  image?: string;
  build?: { context: string; dockerfile: string; target?: string };
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  networks?: string[];
}
interface Compose {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
  networks?: Record<string, unknown>;
}

const composeText = read("docker-compose.yml");
const devText = read("docker-compose.dev.yml");
const compose = Bun.YAML.parse(composeText) as Compose;
const devOverride = Bun.YAML.parse(devText) as Compose;
const pkg = JSON.parse(read("package.json")) as { scripts: Record<string, string>; dependencies: Record<string, string>; devDependencies: Record<string, string> };

// --- Dockerfiles: a small parser for the instructions these files use ---

interface Instruction {
  op: string;
  args: string;
}
interface Stage {
  image: string;
  name: string | null;
  body: Instruction[];
}

function parseDockerfile(text: string): { globalArgs: Map<string, string>; stages: Stage[] } {
  const lines = text.replace(/\\\n/g, " ").split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"));
  const globalArgs = new Map<string, string>();
  const stages: Stage[] = [];
  for (const line of lines) {
    const [, op = "", args = ""] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    const upper = op.toUpperCase();
    if (upper === "FROM") {
      const [image = "", as, name] = args.split(/\s+/);
      stages.push({ image, name: as?.toUpperCase() === "AS" && name ? name : null, body: [] });
    } else if (stages.length === 0 && upper === "ARG") {
      const [k = "", v = ""] = args.split("=");
      globalArgs.set(k, v);
    } else {
      stages.at(-1)!.body.push({ op: upper, args });
    }
  }
  return { globalArgs, stages };
}

const exec = (args: string): string[] => JSON.parse(args) as string[];
const one = (stage: Stage, op: string) => stage.body.filter((i) => i.op === op);

/** COPY's sources (repo paths) and destination, skipping COPY --from (another stage's files). */
function copies(stage: Stage): Array<{ sources: string[]; dest: string }> {
  return one(stage, "COPY")
    .filter((i) => !i.args.startsWith("--from"))
    .map((i) => {
      const parts = i.args.split(/\s+/).filter((p) => !p.startsWith("--"));
      return { sources: parts.slice(0, -1), dest: parts.at(-1)! };
    });
}

function dockerignore(): string[] {
  return read(".dockerignore").split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"));
}

function ignored(path: string, patterns: string[]): boolean {
  return patterns.some((p) => path === p || path.startsWith(p + "/") || (p.startsWith("*.") && path.endsWith(p.slice(1))));
}

const bunDocker = parseDockerfile(read("Dockerfile.bun"));
const testDocker = parseDockerfile(read("Dockerfile.test"));
const stage = (name: string) => bunDocker.stages.find((s) => s.name === name)!;

// --- the stack config, read by pgbun's own parser ---

const action = parseCli(["--config", "config/pgbun.toml"], {}, REPO_ROOT);
if (action.kind !== "run") throw new Error("config/pgbun.toml did not load");
const config = action.config;
const settings = config.settings;

// --- variables: ${NAME:-default} in the compose files, NAME=default in .env.example ---

function composeVariables(text: string): Map<string, string | null> {
  const vars = new Map<string, string | null>();
  // $${NAME} is an escape for the container's own shell, not a compose variable.
  for (const m of text.matchAll(/(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}/g)) {
    const [, name = "", def] = m;
    const seen = vars.get(name);
    if (seen !== undefined && seen !== (def ?? null)) throw new Error(`\${${name}} has two defaults in the compose files: ${seen} and ${def}`);
    vars.set(name, def ?? null);
  }
  return vars;
}

function envExample(): Map<string, { value: string; comment: string }> {
  const out = new Map<string, { value: string; comment: string }>();
  let comment = "";
  for (const line of read(".env.example").split("\n")) {
    if (line.startsWith("#")) comment = line;
    else if (/^[A-Za-z_][A-Za-z0-9_]*=/.test(line)) {
      const [name = "", ...rest] = line.split("=");
      out.set(name, { value: rest.join("="), comment });
      comment = "";
    } else if (line.trim() === "") comment = "";
  }
  return out;
}

describe("docker-compose.yml", () => {
  test("has exactly postgres, pgbun and test-runner, all on one network", () => {
    expect(Object.keys(compose.services).sort()).toEqual(["pgbun", "postgres", "test-runner"]);
    const networks = Object.keys(compose.networks ?? {});
    expect(networks).toHaveLength(1);
    for (const s of Object.values(compose.services)) expect(s.networks).toEqual(networks);
  });

  test("postgres: postgres:16-alpine, the stack's database and role, init.sql mounted, data in a named volume, pg_isready", () => {
    const pg = compose.services.postgres!;
    expect(pg.image).toBe("postgres:16-alpine");
    expect(pg.environment).toEqual({
      POSTGRES_DB: "${POSTGRES_DB:-pgbun_test}",
      POSTGRES_USER: "${POSTGRES_USER:-pgbun_user}",
      POSTGRES_PASSWORD: "${POSTGRES_PASSWORD:-pgbun_pass}",
    });
    expect(pg.volumes).toContain("./docker-entrypoint-initdb.d:/docker-entrypoint-initdb.d:ro");
    expect(exists("docker-entrypoint-initdb.d/init.sql")).toBe(true);
    const named = pg.volumes!.map((v) => v.split(":")[0]!).filter((src) => !src.startsWith("."));
    expect(named.length).toBe(1);
    expect(Object.keys(compose.volumes ?? {})).toEqual(named);
    expect(pg.healthcheck!.test.join(" ")).toContain("pg_isready");
  });

  test("pgbun: built from Dockerfile.bun's runtime stage, 6432 its only published port, config mounted read-only", () => {
    const s = compose.services.pgbun!;
    expect(s.build).toEqual({ context: ".", dockerfile: "Dockerfile.bun", target: "runtime" });
    expect(bunDocker.stages.map((st) => st.name)).toContain(s.build!.target!);
    expect(s.ports).toEqual(["6432:6432"]);
    for (const [name, other] of Object.entries(compose.services)) if (name !== "pgbun") expect(other.ports).toBeUndefined();
    expect(s.volumes).toEqual(["./config:/app/config:ro"]);
    // --config /app/config/pgbun.toml is ./config/pgbun.toml through that mount.
    expect(s.command).toEqual(["--config", "/app/config/pgbun.toml"]);
    expect(exists("config/pgbun.toml")).toBe(true);
    expect(s.depends_on).toEqual({ postgres: { condition: "service_healthy" } });
  });

  test("pgbun listens where compose publishes and other containers can reach it", () => {
    const [published, target] = compose.services.pgbun!.ports![0]!.split(":");
    expect(settings.listen).toEqual({ host: "0.0.0.0", port: Number(target) });
    expect(published).toBe("6432");
    expect(settings.stats_listen).toEqual({ host: "0.0.0.0", port: 6480 });
    expect(one(stage("runtime"), "EXPOSE")[0]!.args.split(/\s+/).map(Number).sort()).toEqual([settings.listen.port, settings.stats_listen!.port].sort());
  });

  test("pgbun's healthcheck asks its own /healthz on stats_listen's port, the same command as the image's HEALTHCHECK", () => {
    const check = compose.services.pgbun!.healthcheck!.test;
    expect(check.join(" ")).toContain(`http://127.0.0.1:${settings.stats_listen!.port}/healthz`);
    const image = one(stage("runtime"), "HEALTHCHECK")[0]!.args;
    expect(exec(image.slice(image.indexOf("CMD ") + 4))).toEqual(check.slice(1));
    // The binary is installed where that command calls it.
    expect(one(stage("runtime"), "COPY").some((i) => i.args.endsWith(`/usr/local/bin/${check[3]}`))).toBe(true);
  });

  test("test-runner: built from Dockerfile.test, pointed at pgbun's port and stats, metrics in ./volumes, after pgbun is healthy", () => {
    const s = compose.services["test-runner"]!;
    expect(s.build).toEqual({ context: ".", dockerfile: "Dockerfile.test" });
    const env = s.environment!;
    expect(env.PGBUN_HOST).toBe("pgbun");
    expect(env.PGBUN_PORT).toBe(String(settings.listen.port));
    expect(env.PGBUN_STATS_URL).toBe(`http://pgbun:${settings.stats_listen!.port}`);
    expect(env.PGBUN_DIRECT_URL).toContain("@postgres:5432/");
    expect(s.volumes).toEqual(["./volumes/metrics:/metrics"]);
    expect(read(".gitignore")).toContain("volumes/*");
    expect(s.depends_on).toEqual({ pgbun: { condition: "service_healthy" } });
    // Every variable it sets is a flag of the load-test scripts.
    const flagEnv = Object.keys(FLAGS).map(envName);
    for (const name of Object.keys(env)) expect(flagEnv).toContain(name);
  });

  test("every variable the compose files read is in .env.example with the same default and a line saying what it does", () => {
    const used = composeVariables(composeText + "\n" + devText);
    const documented = envExample();
    expect([...documented.keys()].sort()).toEqual([...used.keys()].sort());
    for (const [name, def] of used) {
      expect({ name, value: documented.get(name)!.value }).toEqual({ name, value: def! });
      expect(documented.get(name)!.comment.length).toBeGreaterThan(10);
    }
  });

  test("the defaults in .env.example are the database, role and password config/pgbun.toml uses", () => {
    const env = envExample();
    const [db = "", user = "", password = ""] = ["POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD"].map((k) => env.get(k)!.value);
    expect([...config.databases.keys()].sort()).toEqual(["pgbun_session", "pgbun_statement", "pgbun_transaction"]);
    for (const [name, d] of config.databases) {
      expect({ name, host: d.host, port: d.port, dbname: d.dbname, user: d.user, password: d.password }).toEqual({ name, host: "postgres", port: 5432, dbname: db, user, password });
      expect(d.pool_mode).toBe(name.replace("pgbun_", "") as "session");
    }
    expect(compose.services[config.databases.get("pgbun_session")!.host]).toBeDefined();
    expect(config.users.get(user)?.password).toBe(password);
    expect(settings.admin_users).toContain(user);
    expect(settings.default_pool_size).toBe(5);
    expect(read(".env.example")).toContain(`PGBUN_MODE=${FLAGS.mode.default}`);
  });

  test("docker-compose.dev.yml swaps pgbun to Dockerfile.bun's dev stage with ./src mounted", () => {
    const s = devOverride.services.pgbun!;
    expect(Object.keys(devOverride.services)).toEqual(["pgbun"]);
    expect(bunDocker.stages.map((st) => st.name)).toContain(s.build!.target!);
    expect(s.volumes).toEqual(["./src:/app/src:ro"]);
    expect(exists("src/main.ts")).toBe(true);
    expect([...s.entrypoint!, ...s.command!]).toEqual(exec(one(stage(s.build!.target!), "CMD")[0]!.args).map((a) => (a === "config/pgbun.toml" ? "/app/config/pgbun.toml" : a)));
    expect(s.healthcheck!.test.slice(3)).toEqual(compose.services.pgbun!.healthcheck!.test.slice(5));
  });

  test("docker-compose config accepts both files", () => {
    if (Bun.which("docker-compose") === null) {
      console.log("note: docker-compose is not installed; skipping `docker-compose config -q`");
      return;
    }
    const plain = Bun.spawnSync(["docker-compose", "config", "-q"], { cwd: REPO_ROOT, stderr: "pipe", timeout: 30_000 });
    expect(plain.stderr.toString()).toBe("");
    expect(plain.exitCode).toBe(0);
    const dev = Bun.spawnSync(["docker-compose", "-f", "docker-compose.yml", "-f", "docker-compose.dev.yml", "config", "-q"], { cwd: REPO_ROOT, stderr: "pipe", timeout: 30_000 });
    expect(dev.stderr.toString()).toBe("");
    expect(dev.exitCode).toBe(0);
  });
});

describe("Dockerfile.bun", () => {
  test("builds on the Bun version package.json pins, from bun.lock, with package.json's build command", () => {
    expect(bunDocker.globalArgs.get("BUN_VERSION")).toBe(pkg.devDependencies.bun);
    for (const st of bunDocker.stages.filter((s) => s.image.startsWith("oven/bun"))) expect(st.image).toBe("oven/bun:${BUN_VERSION}");
    expect(one(stage("deps"), "RUN")[0]!.args).toBe("bun install --frozen-lockfile --production");
    expect(one(stage("build"), "RUN")[0]!.args.startsWith(pkg.scripts.build!)).toBe(true);
    expect(pkg.scripts.build).toBe("bun build --compile src/main.ts --outfile dist/pgbun");
  });

  test("the runtime stage is the default (last) one and holds only the binary and the config", () => {
    const runtime = bunDocker.stages.at(-1)!;
    expect(runtime.name).toBe("runtime");
    expect(runtime.image).toBe("debian:bookworm-slim");
    const outfile = pkg.scripts.build!.split(" ").at(-1)!;
    expect(one(runtime, "COPY").map((i) => i.args)).toEqual([`--from=build /app/${outfile} /usr/local/bin/pgbun`, "config ./config"]);
    expect(exec(one(runtime, "ENTRYPOINT")[0]!.args)).toEqual(["pgbun"]);
    expect(exec(one(runtime, "CMD")[0]!.args)).toEqual(["--config", "config/pgbun.toml"]);
    expect(one(runtime, "USER")).toHaveLength(1);
  });

  test("the dev stage runs bun --watch on src/main.ts with the stack config", () => {
    expect(exec(one(stage("dev"), "CMD")[0]!.args)).toEqual(["bun", "--watch", "src/main.ts", "--config", "config/pgbun.toml"]);
  });
});

describe("Dockerfile.test", () => {
  const image = testDocker.stages[0]!;

  test("runs `bun run SCRIPT` from a folder where load-test.js resolves; its default is a short transaction-mode load test", () => {
    expect(testDocker.stages).toHaveLength(1);
    expect(image.image).toBe("oven/bun:${BUN_VERSION}");
    expect(testDocker.globalArgs.get("BUN_VERSION")).toBe(pkg.devDependencies.bun);
    expect(exec(one(image, "ENTRYPOINT")[0]!.args)).toEqual(["bun", "run"]);
    const cmd = exec(one(image, "CMD")[0]!.args);
    expect(cmd[0]).toBe("load-test.js");
    expect(cmd.join(" ")).not.toContain("--mode");
    expect(FLAGS.mode.default).toBe("transaction");
    expect(FLAGS.duration.default).toBeLessThanOrEqual(10);
    expect(cmd).toContain("--out=/metrics/load-test.json");
    expect(one(image, "WORKDIR").map((i) => i.args)).toEqual(["/app", "/app/tests"]);
  });

  test("copies every file the scripts import, and installs every package they import from dependencies", () => {
    const copied = copies(image).flatMap((c) => c.sources);
    const scripts = copied.filter((p) => p.startsWith("tests/"));
    expect(scripts).toContain("tests/load-test.js");
    expect(scripts).toContain("tests/transaction-test.js");
    const packages = new Set<string>();
    for (const file of scripts) {
      for (const m of read(file).matchAll(/(?:from|import)\s+"([^"]+)"/g)) {
        const spec = m[1]!;
        if (spec.startsWith(".")) expect({ file, imports: posix.join(posix.dirname(file), spec), copied: copied.includes(posix.join(posix.dirname(file), spec)) }).toMatchObject({ copied: true });
        else if (!spec.startsWith("node:") && !spec.startsWith("bun:")) packages.add(spec);
      }
    }
    expect([...packages].sort()).toEqual(["minimist", "postgres"]);
    for (const p of packages) expect(pkg.dependencies[p]).toBeDefined();
  });

  test("laid out as the image lays them out, the scripts start with `bun run` from the work dir", () => {
    const root = mkdtempSync(join(tmpdir(), "pgbun-image-"));
    atEnd(() => rmSync(root, { recursive: true, force: true }));
    const app = join(root, "app");
    for (const c of copies(image)) {
      for (const src of c.sources) {
        const dest = c.dest.endsWith("/") ? join(app, c.dest, src.split("/").at(-1)!) : join(app, c.dest);
        mkdirSync(dirname(dest), { recursive: true });
        copyFileSync(join(REPO_ROOT, src), dest);
      }
    }
    symlinkSync(join(REPO_ROOT, "node_modules"), join(app, "node_modules"));
    const workdir = join(root, one(image, "WORKDIR").at(-1)!.args);
    for (const script of ["load-test.js", "transaction-test.js"]) {
      const r = Bun.spawnSync([process.execPath, ...exec(one(image, "ENTRYPOINT")[0]!.args).slice(1), script, "--help"], { cwd: workdir, stdout: "pipe", stderr: "pipe", timeout: 20_000 });
      expect({ script, code: r.exitCode, err: r.stderr.toString() }).toEqual({ script, code: 0, err: "" });
      expect(r.stdout.toString()).toContain("PGBUN_STATS_URL");
    }
  });
});

describe("build context and lockfiles", () => {
  test("every COPY source exists and is not excluded by .dockerignore; secrets and local data are", () => {
    const patterns = dockerignore();
    for (const file of [bunDocker, testDocker]) {
      for (const st of file.stages) {
        for (const src of copies(st).flatMap((c) => c.sources)) {
          expect({ src, exists: exists(src), ignored: ignored(src, patterns) }).toEqual({ src, exists: true, ignored: false });
        }
      }
    }
    for (const p of ["node_modules", ".env", "volumes", ".git"]) expect(patterns).toContain(p);
  });

  test("bun.lock (for the images) and package-lock.json (for npm ci) pin the same version and integrity of every package", () => {
    const bunLock = Bun.JSONC.parse(read("bun.lock")) as { packages: Record<string, [string, string, unknown, string]> };
    const npmLock = JSON.parse(read("package-lock.json")) as { packages: Record<string, { version?: string; integrity?: string }> };
    const fromNpm = Object.entries(npmLock.packages)
      .filter(([path]) => path.startsWith("node_modules/"))
      .map(([path, p]) => `${path.slice(path.lastIndexOf("node_modules/") + 13)}@${p.version} ${p.integrity}`)
      .sort();
    const fromBun = Object.values(bunLock.packages).map(([id, , , integrity]) => `${id} ${integrity}`).sort();
    expect(fromBun).toEqual(fromNpm);
  });

  test("package.json's scripts point at files that exist", () => {
    expect(pkg.scripts.test).toBe("bun test --timeout 60000");
    expect(pkg.scripts.dev).toBe("bun scripts/dev.ts");
    expect(pkg.scripts.start).toBe("bun src/main.ts");
    expect(pkg.scripts["load-test"]).toBe("bun tests/load-test.js");
    for (const script of Object.values(pkg.scripts)) {
      for (const path of script.split(" ").filter((w) => /\.(ts|js)$/.test(w))) expect({ script, path, exists: exists(path) }).toEqual({ script, path, exists: true });
    }
  });
});
