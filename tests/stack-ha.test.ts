// The high-availability variant of the compose stack: docker-compose.ha.yml over docker-compose.yml adds a streaming
// replica, and config/pgbun.ha.toml (loaded by pgbun's own parser) lists both hosts for every database.

import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "./harness/pgbun.ts";
import { parseCli } from "../src/cli.ts";

const read = (path: string) => readFileSync(join(REPO_ROOT, path), "utf8");

interface Service {
  image?: string;
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
}

const base = Bun.YAML.parse(read("docker-compose.yml")) as { services: Record<string, Service> };
const ha = Bun.YAML.parse(read("docker-compose.ha.yml")) as { services: Record<string, Service>; volumes: Record<string, unknown> };

describe("docker-compose.ha.yml", () => {
  test("adds a replica made with pg_basebackup -R from the primary, on volumes of its own", () => {
    const replica = ha.services["postgres-replica"]!;
    expect(replica.image).toBe(base.services.postgres!.image!);
    const script = read("deploy/compose-ha/replica-entrypoint.sh");
    expect(script).toContain("pg_basebackup -h postgres");
    expect(script).toContain(" -R ");
    expect(replica.entrypoint).toEqual(["/bin/sh", "/etc/pgbun-ha/replica-entrypoint.sh"]);
    expect(replica.volumes).toContain("./deploy/compose-ha:/etc/pgbun-ha:ro");
    expect(replica.depends_on?.postgres?.condition).toBe("service_healthy");
    // The primary lets replication in from its first start, with the hba file the replica uses too.
    expect(read("deploy/compose-ha/pg_hba.conf")).toMatch(/^host replication all all scram-sha-256$/m);
    expect(ha.services.postgres!.command).toContain("hba_file=/etc/pgbun-ha/pg_hba.conf");
    expect(script).toContain("hba_file=/etc/pgbun-ha/pg_hba.conf");
    expect(Object.keys(ha.volumes).sort()).toEqual(["pgdata-ha-primary", "pgdata-ha-replica"]);
    for (const v of [...(ha.services.postgres!.volumes ?? []), ...(replica.volumes ?? [])]) {
      const src = v.split(":")[0]!;
      if (src.startsWith("./")) expect(existsSync(join(REPO_ROOT, src))).toBe(true);
    }
  });

  test("pgbun runs config/pgbun.ha.toml, whose databases list the primary and the replica by their service names", () => {
    expect(ha.services.pgbun!.command).toEqual(["--config", "/app/config/pgbun.ha.toml"]);
    const action = parseCli(["--config", "config/pgbun.ha.toml"], {}, REPO_ROOT);
    if (action.kind !== "run") throw new Error("expected a config to run");
    const services = new Set([...Object.keys(base.services), ...Object.keys(ha.services)]);
    for (const db of action.config.databases.values()) {
      expect(db.hosts?.map((h) => h.host)).toEqual(["postgres", "postgres-replica"]);
      for (const h of db.hosts!) expect(services.has(h.host)).toBe(true);
    }
    expect(action.config.databases.get("pgbun_split")?.read_write_split).toBe(true);
  });

  test("docker-compose config accepts it over docker-compose.yml", () => {
    if (Bun.which("docker-compose") === null) {
      console.log("note: docker-compose is not installed; skipping `docker-compose config -q`");
      return;
    }
    const r = Bun.spawnSync(["docker-compose", "-f", "docker-compose.yml", "-f", "docker-compose.ha.yml", "config", "-q"], {
      cwd: REPO_ROOT,
      stderr: "pipe",
      timeout: 30_000,
    });
    expect(r.stderr.toString()).toBe("");
    expect(r.exitCode).toBe(0);
  });
});
