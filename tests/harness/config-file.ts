// Writes a pgbun TOML config into a temp folder for tests that need databases, users or a reload.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { atEnd } from "./cleanup.ts";

export function writeConfig(text: string, path?: string): string {
  let file = path;
  if (file === undefined) {
    const dir = mkdtempSync(join(tmpdir(), "pgbun-cfg-"));
    atEnd(() => rmSync(dir, { recursive: true, force: true }));
    file = join(dir, "pgbun.toml");
  }
  writeFileSync(file, text);
  return file;
}

/** Runs psql against pgbun's admin console; returns rows as objects keyed by column name. */
export async function adminQuery(port: number, sql: string, user = "admin", password = "adminpass", db = "pgbun"): Promise<Array<Record<string, string>>> {
  const proc = Bun.spawn(["psql", "-X", "-A", "-F", "\t", "-P", "footer=off", "-h", "127.0.0.1", "-p", String(port), "-U", user, "-d", db, "-c", sql], {
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, PGPASSWORD: password },
  });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(err.trim());
  const lines = out.trimEnd().split("\n");
  if (lines.length === 0 || lines[0] === "" || !lines[0]!.includes("\t") && lines.length === 1 && !/^\w+$/.test(lines[0]!)) return [];
  const header = lines[0]!.split("\t");
  return lines.slice(1).map((l) => Object.fromEntries(l.split("\t").map((v, i) => [header[i]!, v])));
}
