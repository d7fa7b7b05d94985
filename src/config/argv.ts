// The command line as minimist reads it, checked: every flag known, every setting flag with a value of the right shape.

import minimist from "minimist";
import { ConfigError, flagName } from "./errors.ts";
import { nearest } from "./suggest.ts";
import { isSettingKey, SETTING_KEYS, SETTINGS } from "./schema.ts";

export type FlagValue = string | number | boolean;

export interface ParsedArgs {
  help: boolean;
  version: boolean;
  /** Setting flags by snake_case name as typed: --pool-size stays pool_size, so an error names the flag the user wrote. */
  flags: Map<string, FlagValue>;
  config: string | undefined;
  /** --pgbouncer-ini: PgBouncer's own config file, read as it is. */
  pgbouncerIni: string | undefined;
  /** Each --upstream adds one database. */
  upstream: string[];
}

/** Flags that are not settings; pool_size is --default-pool-size under the name people reach for first. */
const EXTRA_FLAGS = ["config", "pgbouncer_ini", "upstream", "pool_size", "help", "version"] as const;
const KNOWN = [...SETTING_KEYS, ...EXTRA_FLAGS] as string[];
const SHORT: Record<string, string> = { h: "help", v: "version" };

/** Flags that take a value: declared so minimist keeps "007" as text and never reads a value as a boolean. */
const VALUED = [...SETTING_KEYS.filter((k) => SETTINGS[k].kind !== "bool"), "config", "pgbouncer_ini", "upstream", "pool_size"];
const STRING_FLAGS = VALUED.flatMap((k) => [k, k.replace(/_/g, "-")]);

export function parseArgs(argv: readonly string[]): ParsedArgs {
  const parsed = minimist(joinNegativeValues(argv), { string: STRING_FLAGS, boolean: ["help", "version"], alias: SHORT });
  const out: ParsedArgs = { help: parsed.help === true, version: parsed.version === true, flags: new Map(), config: undefined, pgbouncerIni: undefined, upstream: [] };
  // Someone asking for help may well have mistyped a flag beside it; the help is what they need then.
  if (out.help || out.version) return out;
  const stray = parsed._[0];
  if (stray !== undefined) {
    throw new ConfigError(`unexpected argument "${stray}": settings are flags such as --pool-mode transaction (see pgbun --help)`, { value: stray });
  }
  for (const [written, raw] of Object.entries(parsed)) {
    if (written === "_" || written in SHORT) continue;
    const key = written.replace(/-/g, "_");
    // minimist turns --a.b=1 into { a: { b: 1 } }; no pgbun flag has a dot.
    if (typeof raw === "object" && raw !== null && !Array.isArray(raw)) throw unknownFlag(`${written}.${Object.keys(raw)[0] ?? ""}`);
    if (!KNOWN.includes(key)) throw unknownFlag(raw === false ? `no-${written}` : written);
    if (key === "help" || key === "version") continue;
    const values = (Array.isArray(raw) ? raw : [raw]) as FlagValue[];
    if (key === "upstream") {
      out.upstream.push(...values.map(String));
      continue;
    }
    // A repeated flag takes its last value, as later flags override earlier ones everywhere else.
    const value = values[values.length - 1]!;
    if (value === false && !(isSettingKey(key) && SETTINGS[key].kind === "bool")) {
      throw new ConfigError(`--no-${written} is not a flag: only on/off settings have a --no- form; give a value with ${flagName(key)} VALUE`, {
        key,
        source: "flag",
        origin: `--no-${written}`,
      });
    }
    if (key === "config") out.config = String(value);
    else if (key === "pgbouncer_ini") out.pgbouncerIni = String(value);
    else out.flags.set(key, value);
  }
  return out;
}

function unknownFlag(written: string): ConfigError {
  const dashes = written.length === 1 ? "-" : "--";
  const near = nearest(written.replace(/-/g, "_"), KNOWN);
  const hint = near === null ? "" : `; did you mean ${flagName(near)}?`;
  return new ConfigError(`unknown flag ${dashes}${written}${hint} (pgbun --help lists every flag)`, {
    key: written,
    source: "flag",
    origin: dashes + written,
    allowed: near === null ? undefined : flagName(near),
  });
}

/** minimist would read the -1 of `--min-pool-size -1` as a flag of its own; keep it the value, so the error says what is wrong with it. */
function joinNegativeValues(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const next = argv[i + 1];
    if (arg.startsWith("--") && !arg.includes("=") && STRING_FLAGS.includes(arg.slice(2)) && next !== undefined && /^-\.?\d/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}
