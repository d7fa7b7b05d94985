// The command line: minimist flags to config inputs, --help and --version.

import minimist from "minimist";
import { VERSION } from "./version.ts";
import { ConfigError, envName, flagName } from "./config/errors.ts";
import { loadConfig, type FlagValue } from "./config/load.ts";
import { describeAllowed, SETTINGS, type Config } from "./config/schema.ts";

export { formatConfigError } from "./config/errors.ts";

export type CliAction = { kind: "run"; config: Config } | { kind: "help"; text: string } | { kind: "version"; text: string };

export { VERSION };

export function parseCli(argv: string[], env: Record<string, string | undefined>, cwd: string): CliAction {
  const args = minimist(argv, { string: ["config", "upstream", "listen", "stats-listen", "server-reset-query", "admin-users", "stats-users"], alias: { h: "help", v: "version" } });
  if (args._.length > 0) throw new ConfigError(`unexpected argument "${args._[0]}"; settings are given as --key value (see --help)`);
  const flags = new Map<string, FlagValue>();
  for (const [k, v] of Object.entries(args)) {
    if (k === "_" || k === "h" || k === "v") continue;
    if (k.startsWith("no-") && v === false) continue;
    const key = k.replace(/-/g, "_");
    // minimist turns --no-x into x=false; --x=false arrives as the string "false".
    flags.set(key, v as FlagValue);
  }
  if (flags.get("help")) return { kind: "help", text: helpText() };
  if (flags.get("version")) return { kind: "version", text: `pgbun ${VERSION}` };
  flags.delete("help");
  flags.delete("version");
  for (const [k, v] of flags) {
    if (v === true && k in SETTINGS && SETTINGS[k as keyof typeof SETTINGS].kind !== "bool") {
      throw new ConfigError("missing value", k, "", "flag", describeAllowed(SETTINGS[k as keyof typeof SETTINGS]));
    }
  }
  return { kind: "run", config: loadConfig({ flags, env, cwd }) };
}

export function helpText(): string {
  const lines = [
    `pgbun ${VERSION}: a PostgreSQL connection pooler on Bun`,
    "",
    "Usage:",
    "  pgbun --upstream postgres://USER:PASSWORD@HOST:5432/DB [--pool-mode transaction] [--pool-size 20]",
    "  pgbun --config config/pgbun.toml",
    "",
    "  --config PATH            TOML config file, relative to the working directory (env PGBUN_CONFIG)",
    "  --upstream URL           pool this PostgreSQL database; clients log in as its user with its password (env PGBUN_UPSTREAM)",
    "  --pool-size N            alias of --default-pool-size",
    "  --help, --version",
    "",
    "Settings (flag, environment variable, default): flags beat the environment, which beats the file.",
  ];
  for (const [key, spec] of Object.entries(SETTINGS)) {
    const def = spec.default === null ? "unset" : Array.isArray(spec.default) ? spec.default.join(",") || "none" : String(spec.default);
    lines.push(`  ${flagName(key).padEnd(28)} ${envName(key).padEnd(34)} default ${def}`);
    lines.push(`      ${spec.help}`);
  }
  return lines.join("\n");
}
