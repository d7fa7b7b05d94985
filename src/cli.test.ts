import { expect, test } from "bun:test";
import pkg from "../package.json";
import { ConfigError, formatConfigError, helpText, parseCli } from "./cli.ts";
import { envName, flagName } from "./config/errors.ts";
import { SETTING_KEYS } from "./config/schema.ts";

const UP = ["--upstream", "postgres://app:pw@127.0.0.1/appdb"];

function errorLine(argv: string[], env: Record<string, string> = {}): string {
  try {
    parseCli(argv, env, "/");
  } catch (e) {
    if (e instanceof ConfigError) return formatConfigError(e);
    throw e;
  }
  throw new Error("expected a ConfigError");
}

test("a command line with a database runs with the config it describes", () => {
  const a = parseCli([...UP, "--pool-mode", "transaction", "--pool-size", "5", "--listen", "0.0.0.0:7432"], {}, "/");
  if (a.kind !== "run") throw new Error(`expected run, got ${a.kind}`);
  expect(a.config.settings).toMatchObject({ pool_mode: "transaction", default_pool_size: 5, listen: { host: "0.0.0.0", port: 7432 } });
  expect(a.config.databases.get("appdb")).toMatchObject({ user: "app", password: "pw" });
});

test("--help lists every setting as a flag with its environment variable and default", () => {
  for (const argv of [["--help"], ["-h"], [...UP, "--help"]]) {
    const a = parseCli(argv, {}, "/");
    expect(a).toEqual({ kind: "help", text: helpText() });
  }
  const text = helpText();
  for (const key of SETTING_KEYS) {
    expect(text).toMatch(new RegExp(`^  ${flagName(key)} \\S+  \\(default .+, env ${envName(key)}\\)\n {8}\\S`, "m"));
  }
  for (const flag of ["--config PATH", "--upstream URL", "--pool-size N", "--version"]) expect(text).toContain(flag);
  expect(text).toContain('--pool-mode session|transaction|statement  (default session, env PGBUN_POOL_MODE)');
  expect(text).toContain('--server-reset-query TEXT  (default "DISCARD ALL", env PGBUN_SERVER_RESET_QUERY)');
  expect(text).toContain("--listen HOST:PORT  (default 127.0.0.1:6432, env PGBUN_LISTEN)");
  expect(text).toContain("--stats-listen HOST:PORT  (default off, env PGBUN_STATS_LISTEN)");
  expect(text).toContain("--default-pool-size N  (default 20, env PGBUN_DEFAULT_POOL_SIZE)");
  expect(text).toContain("--log-connections true|false  (default true, env PGBUN_LOG_CONNECTIONS)");
});

test("--help and --version need no database and answer beside a bad flag or environment", () => {
  expect(parseCli(["--pool-mod", "x", "--help"], {}, "/").kind).toBe("help");
  expect(parseCli(["--help"], { PGBUN_POOL_MODE: "bogus" }, "/").kind).toBe("help");
  expect(parseCli(["--version"], { PGBUN_POOL_MODE: "bogus" }, "/").kind).toBe("version");
});

test("--version prints pgbun and the version from package.json", () => {
  expect(parseCli(["--version"], {}, "/")).toEqual({ kind: "version", text: `pgbun ${pkg.version}` });
  expect(parseCli(["-v"], {}, "/")).toEqual({ kind: "version", text: `pgbun ${pkg.version}` });
  expect(pkg.version).toMatch(/^\d+\.\d+\.\d+/);
});

test("a bad value is one line naming the key, the value, the flag and what is allowed", () => {
  expect(errorLine([...UP, "--pool-mode", "abc"])).toBe('pgbun: invalid value "abc" for pool_mode (flag --pool-mode): expected one of session, transaction, statement');
  expect(errorLine(UP, { PGBUN_POOL_MODE: "abc" })).toBe('pgbun: invalid value "abc" for pool_mode (env PGBUN_POOL_MODE): expected one of session, transaction, statement');
});

test("an unknown flag is an error that suggests the flag meant", () => {
  expect(errorLine([...UP, "--pool-mod", "session"])).toBe("pgbun: unknown flag --pool-mod; did you mean --pool-mode? (pgbun --help lists every flag)");
  expect(errorLine([...UP, "--defualt-pool-size=3"])).toContain("did you mean --default-pool-size?");
  expect(errorLine([...UP, "--frobnicate"])).toBe("pgbun: unknown flag --frobnicate (pgbun --help lists every flag)");
  expect(errorLine([...UP, "-x"])).toContain("unknown flag -x");
  expect(errorLine([...UP, "--no-bogus"])).toContain("unknown flag --no-bogus");
  expect(errorLine([...UP, "--a.b=1"])).toContain("unknown flag --a.b");
});

test("stray words and --no- on a setting that is not on/off are errors too", () => {
  expect(errorLine([...UP, "transaction"])).toContain('unexpected argument "transaction"');
  expect(errorLine([...UP, "--no-pool-mode"])).toContain("--no-pool-mode is not a flag");
});

test("the error carries its parts for callers that want them", () => {
  try {
    parseCli([...UP, "--workers", "0"], {}, "/");
    throw new Error("expected a ConfigError");
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    expect(e).toMatchObject({ code: "CONFIG_ERROR", key: "workers", value: "0", source: "flag", origin: "--workers", allowed: "expected an integer from 1 to 256" });
  }
});
