// deploy/kubernetes: the kustomize trees render offline, every object validates against the Kubernetes API schemas,
// and what they say about pgbun (image, user, ports, config keys, PGBUN_* variables, probes, drain, memory) is true of pgbun.

import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import postgres from "postgres";
import ts from "typescript";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Secret } from "kubernetes-models/v1/Secret";
import { Service } from "kubernetes-models/v1/Service";
import { helpText } from "../src/cli.ts";
import { loadConfig } from "../src/config/load.ts";
import type { Config } from "../src/config/schema.ts";
import { atEnd } from "./harness/cleanup.ts";
import { REPO_ROOT, startPgbun, type PgbunProcess } from "./harness/pgbun.ts";
import { freePort, startPostgres } from "./harness/postgres.ts";

const DEPLOY = join(REPO_ROOT, "deploy/kubernetes");
/** What an operator applies: the base alone, or with one of the two Prometheus flags. */
const TREES = ["base", "overlays/prometheus-annotations", "overlays/service-monitor"];

// Measured for deploy/README.md ("Memory"): these turn the ConfigMap's limits into the memory the pod needs.
/** One pgbun process: 45 MiB at start, plus 20 MiB of growth with 100 busy clients (pgbench, transaction mode). */
const PROCESS_BYTES = 65 * 2 ** 20;
/** 14 KiB per client with 1,000 idle clients logged in (6.5 KiB at 5,000, 4.8 KiB at 10,000): rounded up. */
const CLIENT_BYTES = 16 * 2 ** 10;
/** A 30 MB query raised the peak RSS by 114 MiB: a message costs about 4 times its size while it is gathered. */
const MESSAGE_FACTOR = 4;
/** Big messages in flight at once that the limit must hold. */
const BIG_MESSAGES = 2;

// --- Rendering: the part of kustomize these trees use; kubectl kustomize checks it below when it is installed ---

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

function yamlDocs(path: string): K8sObject[] {
  const parsed = Bun.YAML.parse(readFileSync(path, "utf8")) as unknown;
  return (Array.isArray(parsed) ? parsed : [parsed]).filter((d) => d !== null) as K8sObject[];
}

const KUSTOMIZATION_KEYS = new Set(["apiVersion", "kind", "resources", "components", "patches"]);

/** Builds a Kustomization, or applies a Component to what its parent has built so far (`into`), as kustomize does. */
function build(dir: string, into: K8sObject[] = []): K8sObject[] {
  const k = Bun.YAML.parse(readFileSync(join(dir, "kustomization.yaml"), "utf8")) as Record<string, unknown>;
  for (const key of Object.keys(k)) {
    if (!KUSTOMIZATION_KEYS.has(key)) throw new Error(`${relative(REPO_ROOT, dir)}: this test renders only ${[...KUSTOMIZATION_KEYS].join(", ")}, not ${key}`);
  }
  for (const r of (k.resources ?? []) as string[]) {
    const path = join(dir, r);
    into.push(...(statSync(path).isDirectory() ? build(path) : yamlDocs(path)));
  }
  for (const c of (k.components ?? []) as string[]) build(join(dir, c), into);
  for (const p of (k.patches ?? []) as Array<{ path: string }>) {
    for (const patch of yamlDocs(join(dir, p.path))) {
      const target = into.find((o) => o.apiVersion === patch.apiVersion && o.kind === patch.kind && o.metadata.name === patch.metadata.name);
      if (target === undefined) throw new Error(`${p.path}: no ${patch.kind} ${patch.metadata.name} to patch`);
      merge(target, patch, p.path);
    }
  }
  return into;
}

/** A strategic merge patch limited to maps: lists would need Kubernetes' merge keys, which these patches do not use. */
function merge(target: Record<string, unknown>, patch: Record<string, unknown>, where: string): void {
  for (const [key, value] of Object.entries(patch)) {
    const old = target[key];
    if (Array.isArray(value) || Array.isArray(old)) throw new Error(`${where}: ${key} is a list; this test merges maps only`);
    if (isMap(value) && isMap(old)) merge(old, value, where);
    else target[key] = value;
  }
}

const isMap = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const byName = (objs: K8sObject[]) => Object.fromEntries(objs.map((o) => [`${o.kind}/${o.metadata.name}`, o]));

const rendered = new Map(TREES.map((t) => [t, build(join(DEPLOY, t))]));
const base = rendered.get("base")!;
const one = <T>(kind: string, objs = base): T => {
  const found = objs.filter((o) => o.kind === kind);
  if (found.length !== 1) throw new Error(`expected one ${kind}, found ${found.length}`);
  return found[0] as unknown as T;
};

// --- The objects as the checks below read them ---

interface Probe {
  httpGet?: { path: string; port: string | number };
}
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string }; resourceFieldRef?: { resource: string; divisor?: string } };
}
interface Container {
  name: string;
  image: string;
  command?: string[];
  args: string[];
  env: EnvVar[];
  envFrom?: unknown[];
  ports: Array<{ name: string; containerPort: number }>;
  resources: { requests: Record<string, string>; limits: Record<string, string> };
  startupProbe: Probe;
  readinessProbe: Probe;
  livenessProbe: Probe;
  lifecycle: { preStop: { exec: { command: string[] } } };
  securityContext: Record<string, unknown> & { capabilities: { drop: string[] } };
  volumeMounts: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
}
interface PodSpec {
  enableServiceLinks: boolean;
  terminationGracePeriodSeconds: number;
  securityContext: { runAsNonRoot: boolean; runAsUser: number; runAsGroup: number };
  containers: Container[];
  volumes: Array<{ name: string; configMap?: { name: string } }>;
}
interface DeploymentObject {
  spec: { selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string>; annotations?: Record<string, string> }; spec: PodSpec } };
}

const deployment = one<DeploymentObject>("Deployment");
const pod = deployment.spec.template.spec;
const container = pod.containers[0]!;
const configMap = one<{ metadata: { name: string }; data: Record<string, string> }>("ConfigMap");
const secret = one<{ metadata: { name: string }; stringData: Record<string, string> }>("Secret");
const service = one<{ spec: { selector: Record<string, string>; sessionAffinity: string; ports: Array<{ name: string; port: number; targetPort: string }> } }>("Service");

const portNamed = (name: string | number) => (typeof name === "number" ? name : container.ports.find((p) => p.name === name)?.containerPort);

/** Kubernetes quantities in bytes or cores: 256Mi, 1G, 500m, 2. */
function quantity(q: string): number {
  const m = /^([0-9.]+)(m|k|M|G|Ki|Mi|Gi)?$/.exec(q);
  if (m === null) throw new Error(`not a quantity this test reads: ${q}`);
  const scale: Record<string, number> = { m: 1e-3, k: 1e3, M: 1e6, G: 1e9, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30 };
  return Number(m[1]) * (m[2] === undefined ? 1 : scale[m[2]]!);
}

/** The container's environment as the kubelet sets it: Secret values, and resource fields rounded up by their divisor. */
function containerEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of container.env) {
    const from = e.valueFrom;
    if (e.value !== undefined) env[e.name] = e.value;
    else if (from?.secretKeyRef) env[e.name] = secret.stringData[from.secretKeyRef.key]!;
    else if (from?.resourceFieldRef) {
      const { resource, divisor = "1" } = from.resourceFieldRef;
      const [kind = "", name = ""] = resource.split(".");
      env[e.name] = String(Math.ceil(quantity(container.resources[kind as "limits"][name]!) / quantity(divisor)));
    } else throw new Error(`${e.name}: a source this test does not resolve`);
  }
  return env;
}

/** The config file the container reads (--config), written to a temp folder, and the arguments pointed at it. */
function configOnDisk(): { dir: string; args: string[] } {
  const i = container.args.indexOf("--config");
  const path = container.args[i + 1]!;
  const mount = container.volumeMounts.find((m) => path.startsWith(m.mountPath + "/"));
  const file = mount === undefined ? "" : path.slice(mount.mountPath.length + 1);
  if (mount === undefined || pod.volumes.find((v) => v.name === mount.name)?.configMap?.name !== configMap.metadata.name || !(file in configMap.data)) {
    throw new Error(`--config ${path} is not a key of ConfigMap ${configMap.metadata.name} mounted in the container`);
  }
  const dir = mkdtempSync(join(tmpdir(), "pgbun-k8s-"));
  atEnd(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, file), configMap.data[file]!);
  const args = [...container.args];
  args[i + 1] = join(dir, file);
  return { dir, args };
}

const onDisk = configOnDisk();
const env = containerEnv();
const config: Config = loadConfig({ argv: onDisk.args, env, cwd: onDisk.dir });
const settings = config.settings;

function runtimeStage(): Map<string, string[]> {
  const text = readFileSync(join(REPO_ROOT, "Dockerfile.bun"), "utf8").replace(/\\\n/g, " ");
  const stages = text.split(/^FROM\s+/m).slice(1);
  const last = stages.at(-1)!;
  const ops = new Map<string, string[]>([["FROM", [last.split("\n")[0]!.trim()]]]);
  for (const line of last.split("\n").slice(1)) {
    const m = /^([A-Z]+)\s+(.*)$/.exec(line.trim());
    if (m) ops.set(m[1]!, [...(ops.get(m[1]!) ?? []), m[2]!]);
  }
  return ops;
}

describe("rendering and schemas", () => {
  const kubectl = Bun.which("kubectl");
  test.skipIf(kubectl === null)("kubectl kustomize renders each tree offline exactly as this test does", () => {
    for (const tree of TREES) {
      const r = Bun.spawnSync([kubectl!, "kustomize", join(DEPLOY, tree)], { stderr: "pipe" });
      expect({ tree, code: r.exitCode, stderr: r.stderr.toString() }).toEqual({ tree, code: 0, stderr: "" });
      expect(byName(Bun.YAML.parse(r.stdout.toString()) as K8sObject[])).toEqual(byName(rendered.get(tree)!));
    }
  });
  if (kubectl === null) console.warn("kubernetes.test.ts: kubectl is not on PATH, so kubectl kustomize is not compared; the checks use this test's own rendering");

  const MODELS: Record<string, new (data: never) => { validate(): void }> = {
    "v1/ConfigMap": ConfigMap,
    "v1/Secret": Secret,
    "v1/Service": Service,
    "apps/v1/Deployment": Deployment,
    "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
    "monitoring.coreos.com/v1/ServiceMonitor": ServiceMonitor,
  };
  /** The schema's complaint about an object, or null when it validates. */
  const invalid = (o: K8sObject): string | null => {
    const Model = MODELS[`${o.apiVersion}/${o.kind}`];
    if (Model === undefined) return `no schema for ${o.apiVersion} ${o.kind}`;
    try {
      new Model(structuredClone(o) as never).validate();
      return null;
    } catch (err) {
      return (err as Error).message;
    }
  };

  test("every object of every tree validates against the Kubernetes API schemas, and a broken copy does not", () => {
    const found = [...rendered].flatMap(([tree, objs]) => objs.map((o) => [`${tree}: ${o.kind}/${o.metadata.name}`, invalid(o)]));
    expect(found.filter(([, why]) => why !== null)).toEqual([]);
    expect(found.length).toBe(5 + 5 + 6); // the base's five objects, the same with annotations, and with a ServiceMonitor
    const broken = structuredClone(base.find((o) => o.kind === "Deployment")!) as unknown as DeploymentObject;
    (broken.spec.template.spec.containers[0]!.ports[0] as { containerPort: unknown }).containerPort = "6432";
    expect(invalid(broken as unknown as K8sObject)).toContain("containerPort");
  });

  test.skipIf(kubectl === null)("the overlay deploy/README.md shows builds with kubectl kustomize into valid objects with its image, replicas and Secret", () => {
    const doc = readFileSync(join(REPO_ROOT, "deploy/README.md"), "utf8");
    const block = /```yaml\n(# my-pgbun\/kustomization\.yaml\n[\s\S]*?)```/.exec(doc);
    expect(block).not.toBeNull();
    const dir = mkdtempSync(join(tmpdir(), "pgbun-k8s-overlay-"));
    atEnd(() => rmSync(dir, { recursive: true, force: true }));
    symlinkSync(join(REPO_ROOT, "deploy"), join(dir, "deploy"));
    mkdirSync(join(dir, "my-pgbun"));
    writeFileSync(join(dir, "my-pgbun/kustomization.yaml"), block![1]!);
    const upstream = "postgres://shop:s%40cret@db.example.com:5432/shop";
    writeFileSync(join(dir, "my-pgbun/credentials.env"), `PGBUN_UPSTREAM=${upstream}\n`);
    const r = Bun.spawnSync([kubectl!, "kustomize", join(dir, "my-pgbun")], { stderr: "pipe" });
    expect({ code: r.exitCode, stderr: r.stderr.toString() }).toEqual({ code: 0, stderr: "" });
    const objs = Bun.YAML.parse(r.stdout.toString()) as K8sObject[];
    expect(objs.map((o) => [o.kind, invalid(o)]).filter(([, why]) => why !== null)).toEqual([]);
    const d = one<DeploymentObject & { spec: { replicas: number } }>("Deployment", objs);
    expect(d.spec.replicas).toBe(3);
    expect(d.spec.template.spec.containers[0]!.image).toBe("registry.example.com/pgbun:0.1.0");
    const s = one<{ metadata: { name: string }; data: Record<string, string> }>("Secret", objs);
    expect(s.metadata.name).toBe(secret.metadata.name);
    expect(Buffer.from(s.data.PGBUN_UPSTREAM!, "base64").toString()).toBe(upstream);
  });

  // The schemas allow fields they do not declare; the API server (kubectl's default strict validation) refuses them.
  const TYPES: Record<string, [string, string]> = {
    "v1/ConfigMap": ["kubernetes-models/v1/ConfigMap", "IConfigMap"],
    "v1/Secret": ["kubernetes-models/v1/Secret", "ISecret"],
    "v1/Service": ["kubernetes-models/v1/Service", "IService"],
    "apps/v1/Deployment": ["kubernetes-models/apps/v1/Deployment", "IDeployment"],
    "policy/v1/PodDisruptionBudget": ["kubernetes-models/policy/v1/PodDisruptionBudget", "IPodDisruptionBudget"],
    "monitoring.coreos.com/v1/ServiceMonitor": ["@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor", "IServiceMonitor"],
  };
  /** TypeScript's excess-property check of each object against its kubernetes-models type: per object, its first complaint. */
  function unknownFields(objs: K8sObject[]): Map<number, string> {
    const path = join(REPO_ROOT, "tests", "kubernetes-objects.virtual.ts");
    const lines = Object.entries(TYPES).map(([, [module, type]]) => `import type { ${type} } from "${module}";`);
    const first = lines.length;
    objs.forEach((o, i) => lines.push(`export const o${i}: ${TYPES[`${o.apiVersion}/${o.kind}`]![1]} = ${JSON.stringify(o)};`));
    const options: ts.CompilerOptions = { strict: true, noEmit: true, skipLibCheck: true, types: [], target: ts.ScriptTarget.ESNext, module: ts.ModuleKind.ESNext, moduleResolution: ts.ModuleResolutionKind.Bundler };
    const host = ts.createCompilerHost(options);
    const { getSourceFile, fileExists } = host;
    host.getSourceFile = (f, lang, ...rest) => (f === path ? ts.createSourceFile(f, lines.join("\n"), lang) : getSourceFile.call(host, f, lang, ...rest));
    host.fileExists = (f) => f === path || fileExists.call(host, f);
    const program = ts.createProgram([path], options, host);
    const out = new Map<number, string>();
    for (const d of ts.getPreEmitDiagnostics(program)) {
      const line = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line : -1;
      out.set(line - first, ts.flattenDiagnosticMessageText(d.messageText, " "));
    }
    return out;
  }

  test("no object has a field the Kubernetes API does not know, and a misspelt one is caught", () => {
    const all = [...new Map([...rendered.values()].flat().map((o) => [`${o.kind}/${o.metadata.name}`, o])).values()];
    // One program for all, the misspelt copy last: type-checking kubernetes-models' types takes seconds.
    const typo = structuredClone(base.find((o) => o.kind === "Deployment")!);
    ((typo.spec as DeploymentObject["spec"]).template.spec as unknown as Record<string, unknown>).terminationGracePeriodSecond = 45;
    const found = unknownFields([...all, typo]);
    expect(found.get(all.length)).toContain("terminationGracePeriodSecond");
    found.delete(all.length);
    expect(Object.fromEntries(found)).toEqual({});
  }, 30_000);

  test("the Service, the PodDisruptionBudget and the ServiceMonitor select the Deployment's pods, by ports that exist", () => {
    const labels = deployment.spec.template.metadata.labels;
    const selects = (sel: Record<string, string>) => Object.entries(sel).every(([k, v]) => labels[k] === v);
    expect(selects(deployment.spec.selector.matchLabels)).toBe(true);
    expect(selects(service.spec.selector)).toBe(true);
    expect(selects(one<{ spec: { selector: { matchLabels: Record<string, string> } } }>("PodDisruptionBudget").spec.selector.matchLabels)).toBe(true);
    for (const p of service.spec.ports) expect(portNamed(p.targetPort)).toBe(p.port);
    const monitor = one<{ spec: { selector: { matchLabels: Record<string, string> }; endpoints: Array<{ port: string; path: string }> } }>(
      "ServiceMonitor",
      rendered.get("overlays/service-monitor"),
    );
    const serviceLabels = one<K8sObject>("Service").metadata.labels ?? {};
    expect(Object.entries(monitor.spec.selector.matchLabels).every(([k, v]) => serviceLabels[k] === v)).toBe(true);
    expect(service.spec.ports.map((p) => p.name)).toContain(monitor.spec.endpoints[0]!.port);
    const annotated = one<DeploymentObject>("Deployment", rendered.get("overlays/prometheus-annotations")).spec.template.metadata.annotations ?? {};
    expect(Number(annotated["prometheus.io/port"])).toBe(settings.stats_listen!.port);
    expect([annotated["prometheus.io/scrape"], annotated["prometheus.io/path"], monitor.spec.endpoints[0]!.path]).toEqual(["true", "/metrics", "/metrics"]);
    expect(deployment.spec.template.metadata.annotations).toBeUndefined();
  });
});

describe("the manifests agree with pgbun", () => {
  test("the image, its user and its ports are the ones Dockerfile.bun builds", () => {
    const runtime = runtimeStage();
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as { version: string };
    expect(container.image).toBe(`pgbun:${pkg.version}`);
    // Only the arguments change: the image's ENTRYPOINT (the pgbun binary) runs them.
    expect(container.command).toBeUndefined();
    expect(runtime.get("ENTRYPOINT")).toEqual(['["pgbun"]']);
    const [uid, gid] = runtime.get("USER")![0]!.split(":").map(Number);
    expect(runtime.get("RUN")!.join(" ")).toContain(`--uid ${uid} `);
    expect(runtime.get("RUN")!.join(" ")).toContain(`--gid ${gid} `);
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: uid, runAsGroup: gid });
    expect(uid).toBeGreaterThan(0);
    const exposed = runtime.get("EXPOSE")!.join(" ").split(/\s+/).map(Number).sort();
    expect(container.ports.map((p) => p.containerPort).sort()).toEqual(exposed);
    // preStop runs `sleep` from the image: debian-slim has coreutils.
    expect(runtime.get("FROM")![0]).toStartWith("debian:");
    expect(container.lifecycle.preStop.exec.command[0]).toBe("sleep");
  });

  test("pgbun's own loader takes the ConfigMap's pgbun.toml with the container's environment, and every PGBUN_* variable is one pgbun knows", () => {
    const known = new Set(helpText().match(/PGBUN_[A-Z0-9_]+/g));
    // Service links would add PGBUN_SERVICE_HOST, PGBUN_PORT_6432_TCP... for the Service named pgbun.
    expect(pod.enableServiceLinks).toBe(false);
    expect(container.envFrom).toBeUndefined();
    for (const name of Object.keys(env)) expect(known).toContain(name);
    for (const key of Object.keys(secret.stringData)) expect(container.env.some((e) => e.valueFrom?.secretKeyRef?.key === key)).toBe(true);
    expect(config.source.configFile).toBe(onDisk.args[onDisk.args.indexOf("--config") + 1]!);
    // The Secret's placeholder is a real upstream: the database clients ask for, and the user they log in as.
    expect([...config.databases.keys()]).toEqual(["app"]);
    expect([...config.users.keys()]).toEqual(["app"]);
    expect(settings.listen).toEqual({ host: "0.0.0.0", port: portNamed("postgres")! });
    expect(settings.stats_listen).toEqual({ host: "0.0.0.0", port: portNamed("metrics")! });
    // workers follows the CPU limit: one process per core, rounded up.
    expect(env.PGBUN_WORKERS).toBeDefined();
    expect(settings.workers).toBe(Math.ceil(quantity(container.resources.limits.cpu!)));
  });

  test("SIGTERM has shutdown_timeout to drain after preStop, inside terminationGracePeriodSeconds", () => {
    const pause = Number(container.lifecycle.preStop.exec.command[1]);
    expect(pause).toBeGreaterThanOrEqual(5);
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(pause + settings.shutdown_timeout);
  });

  test("memory requests and limits cover the measured cost of pgbun's processes, max_client_conn clients and max_packet_size messages", () => {
    const processes = settings.workers + (settings.workers > 1 ? 1 : 0); // with workers > 1, a supervisor as well
    const steady = processes * PROCESS_BYTES + settings.max_client_conn * CLIENT_BYTES;
    expect(quantity(container.resources.requests.memory!)).toBeGreaterThanOrEqual(steady);
    expect(quantity(container.resources.limits.memory!)).toBeGreaterThanOrEqual(steady + BIG_MESSAGES * MESSAGE_FACTOR * settings.max_packet_size);
    expect(quantity(container.resources.requests.cpu!)).toBeLessThanOrEqual(quantity(container.resources.limits.cpu!));
  });

  test("the container runs as non-root with a read-only root filesystem, no privilege escalation and no capabilities", () => {
    expect(container.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, privileged: false });
    expect(container.securityContext.capabilities.drop).toEqual(["ALL"]);
    expect(container.volumeMounts.every((m) => m.readOnly === true)).toBe(true);
    // Cancel requests come on a new connection and only the pod holding the client can act on them.
    expect(service.spec.sessionAffinity).toBe("ClientIP");
  });
});

describe("probes and files, with pgbun running as the manifests run it", () => {
  /** The container's command line and environment, on free local ports, against PostgreSQL on `pgPort`. */
  async function runAsManifest(pgPort: number, extraEnv: Record<string, string> = {}, cmd?: string[]): Promise<{ p: PgbunProcess; http: string }> {
    const upstream = env.PGBUN_UPSTREAM!.replace(/\/\/[^/]*\//, `//app:apppass@127.0.0.1:${pgPort}/`);
    // A fixed port: with workers > 1, port 0 would give each worker an HTTP port of its own.
    const statsPort = await freePort();
    const p = await startPgbun([...onDisk.args, "--listen", "127.0.0.1:0", "--stats-listen", `127.0.0.1:${statsPort}`], {
      env: { ...env, PGBUN_UPSTREAM: upstream, ...extraEnv },
      cwd: onDisk.dir,
      cmd: cmd ?? [process.execPath, join(REPO_ROOT, "src/main.ts")],
    });
    return { p, http: `http://127.0.0.1:${statsPort}` };
  }
  const status = async (http: string, probe: Probe) => (await fetch(http + probe.httpGet!.path)).status;
  async function until(what: string, check: () => Promise<boolean>, ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
      await Bun.sleep(100);
    }
  }

  test("startup and liveness pass while PostgreSQL is down; readiness (/healthz) passes only while pgbun can log in", async () => {
    for (const probe of [container.startupProbe, container.readinessProbe, container.livenessProbe]) expect(portNamed(probe.httpGet!.port)).toBe(settings.stats_listen!.port);
    expect(container.readinessProbe.httpGet!.path).toBe("/healthz");
    const pgPort = await freePort();
    const { p, http } = await runAsManifest(pgPort);
    try {
      expect(await status(http, container.startupProbe)).toBe(200);
      // 503 at first while the first login is under way ("starting"), then because it failed ("down").
      const down = async () => {
        const r = await fetch(http + container.readinessProbe.httpGet!.path);
        return r.status === 503 && ((await r.json()) as { status: string }).status === "down";
      };
      await until("readiness fails with PostgreSQL down", down, 10_000);
      expect(await status(http, container.livenessProbe)).toBe(200);
      const pg = await startPostgres({ port: pgPort });
      try {
        await until("readiness passes once PostgreSQL is up", async () => (await status(http, container.readinessProbe)) === 200, 10_000);
        const metrics = await fetch(http + "/metrics");
        expect([metrics.status, (await metrics.text()).includes("pgbun_")]).toEqual([200, true]);
      } finally {
        await pg.stop();
      }
      await until("readiness fails again once PostgreSQL stops", down, 10_000);
      expect([await status(http, container.livenessProbe), await status(http, container.startupProbe)]).toEqual([200, 200]);
      expect(p.proc.exitCode).toBeNull();
    } finally {
      expect(await p.stop("SIGTERM")).toBe(0);
    }
  }, 60_000);

  // strace must be installed and allowed to trace (some containers forbid ptrace).
  const strace = Bun.which("strace");
  const canTrace = strace !== null && Bun.spawnSync([strace, "-f", "-qq", "-o", "/dev/null", "true"]).exitCode === 0;
  if (!canTrace) console.warn("kubernetes.test.ts: strace is missing or cannot trace here, so the read-only root filesystem check is skipped (apt-get install strace)");
  test.skipIf(!canTrace)("the compiled binary opens no file for writing, so a read-only root filesystem needs no volume", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pgbun-k8s-bin-"));
    atEnd(() => rmSync(dir, { recursive: true, force: true }));
    const built = Bun.spawnSync([process.execPath, "build", "--compile", join(REPO_ROOT, "src/main.ts"), "--outfile", join(dir, "pgbun")], { stderr: "pipe" });
    expect({ code: built.exitCode, stderr: built.stderr.toString() }).toMatchObject({ code: 0 });
    const trace = join(dir, "trace.txt");
    const calls = "open,openat,creat,mkdir,mkdirat,unlink,unlinkat,rename,renameat,renameat2,truncate,symlink,symlinkat,link,linkat";
    const pg = await startPostgres();
    try {
      // Two workers, as with a CPU limit of 2: the supervisor and its workers are traced alike.
      const { p, http } = await runAsManifest(pg.port, { PGBUN_WORKERS: "2" }, [strace!, "-f", "-qq", "-o", trace, "-e", `trace=${calls}`, join(dir, "pgbun")]);
      // Signals go to pgbun itself, strace's child; strace exits with pgbun's exit code.
      const pgbun = Number(Bun.spawnSync(["pgrep", "-P", String(p.proc.pid)]).stdout.toString().trim());
      try {
        await until("ready", async () => (await status(http, container.readinessProbe)) === 200, 10_000);
        const sql = postgres(p.url("app", "apppass", "app"), { max: 1 });
        expect([...(await sql`SELECT 1 AS one`)]).toEqual([{ one: 1 }]);
        await sql.end();
        await fetch(http + "/metrics");
        process.kill(pgbun, "SIGHUP");
        await Bun.sleep(300);
        process.kill(pgbun, "SIGTERM");
        expect(await p.proc.exited).toBe(0);
      } finally {
        // A killed strace would leave pgbun running, detached.
        if (p.proc.exitCode === null) process.kill(pgbun, "SIGKILL");
      }
    } finally {
      await pg.stop();
    }
    const lines = readFileSync(trace, "utf8").split("\n");
    expect(lines.some((l) => l.includes("pgbun.toml"))).toBe(true);
    // Attempts count too, whatever they returned: on a read-only root filesystem each would fail with EROFS.
    const writes = lines.filter((l) => /O_WRONLY|O_RDWR|O_CREAT|O_TRUNC/.test(l) || /^\d+ (<\.\.\. )?(creat|mkdir|unlink|rename|truncate|symlink|link)/.test(l));
    expect(writes.filter((l) => !l.includes('"/dev/null"'))).toEqual([]);
  }, 60_000);
});

test("the README's Kubernetes section shows how to build the image, apply the manifests and scale them", () => {
  const readme = readFileSync(join(REPO_ROOT, "README.md"), "utf8");
  const start = readme.indexOf("\n## Running on Kubernetes\n");
  expect(start).toBeGreaterThan(0);
  const end = readme.indexOf("\n## ", start + 1);
  const body = readme.slice(start, end === -1 ? undefined : end);
  expect(body).toContain(`-f Dockerfile.bun -t ${container.image}`);
  expect(body).toContain("kubectl apply -k deploy/kubernetes/base");
  expect(body).toContain("kubectl scale deployment/pgbun --replicas=");
  for (const tree of TREES.slice(1)) expect(body).toContain(`deploy/kubernetes/${tree}`);
  expect(existsSync(join(REPO_ROOT, "deploy/README.md"))).toBe(true);
});
