// A client's startup phase: SSL/GSS negotiation, cancel requests, the startup packet and password authentication.

import { createHmac, randomBytes, type X509Certificate } from "node:crypto";
import { rememberScramKeys } from "../backend/scram-keys.ts";
import { log } from "../log.ts";
import { isMd5Hash, md5PasswordHash, verifyMd5Response } from "../protocol/md5.ts";
import {
  AUTH_OK_MSG,
  authRequest,
  authSasl,
  errorResponse,
  negotiateProtocolVersion,
  parseSaslInitial,
  parseStartup,
  passwordText,
  SSL_REFUSED,
} from "../protocol/messages.ts";
import { ProtocolError } from "../protocol/errors.ts";
import {
  isScramVerifier,
  parseScramVerifier,
  ScramServerExchange,
  scramVerifierFromPassword,
  type ScramVerifier,
} from "../protocol/scram.ts";
import { AUTH_CLEARTEXT, AUTH_MD5, AUTH_SASL_CONTINUE, AUTH_SASL_FINAL, F_PASSWORD } from "../protocol/tags.ts";
import type { ClientConn } from "./client.ts";
import { acceptSslRequest, clientChannelBinding, clientEncrypted, clientTlsRequired } from "./client-tls.ts";
import type { ClientContext, LoginFrom, LoginTarget } from "./context.ts";
import { cameViaUnixSocket } from "./unix-clients.ts";
import { passReplication } from "./replication.ts";

type Step = "startup" | "tls" | "lookup" | "cleartext" | "md5" | "sasl-initial" | "sasl-final";

const INSUFFICIENT_PRIVILEGE = "42501";

/** One SCRAM verifier per plain-text password: PBKDF2 is too slow to run at every login. */
const verifierCache = new Map<string, ScramVerifier>();

function verifierFor(secret: string): ScramVerifier | null {
  if (isScramVerifier(secret)) return parseScramVerifier(secret);
  let v = verifierCache.get(secret);
  if (v === undefined) {
    v = scramVerifierFromPassword(secret);
    if (verifierCache.size > 1000) verifierCache.clear();
    verifierCache.set(secret, v);
  }
  return v;
}

/**
 * A verifier nobody knows the password of, for a user that does not exist: the exchange runs and fails like a wrong
 * password. Its salt depends on the user name and a secret of this process, so asking twice shows the same salt, as
 * for a real user; PostgreSQL does the same.
 */
const decoySecret = randomBytes(32);
function decoyFor(user: string): ScramVerifier {
  return {
    iterations: 4096,
    salt: new Uint8Array(createHmac("sha256", decoySecret).update(user).digest().subarray(0, 16)),
    storedKey: new Uint8Array(randomBytes(32)),
    serverKey: new Uint8Array(randomBytes(32)),
  };
}

/** The CN of the client's verified TLS certificate; null without TLS, certificate or verification. */
function certificateName(c: ClientConn): string | null {
  if (!clientEncrypted(c)) return null;
  const s = c.socket as unknown as { getPeerX509Certificate?(): X509Certificate | undefined; getAuthorizationError?(): Error | null };
  const cert = s.getPeerX509Certificate?.();
  if (cert === undefined || (s.getAuthorizationError?.() ?? null) !== null) return null;
  const cn = /^CN=(.*)$/m.exec(cert.subject);
  return cn ? cn[1]! : null;
}

/** The startup packet's replication parameter, as PostgreSQL reads it; undefined when the value means nothing. */
function replicationKind(v: string | undefined): LoginFrom["replication"] | undefined {
  if (v === undefined) return null;
  const t = v.toLowerCase();
  if (t === "database") return "logical";
  if (["true", "on", "yes", "1"].includes(t)) return "physical";
  if (["false", "off", "no", "0"].includes(t)) return null;
  return undefined;
}

export class Login {
  private step: Step = "startup";
  private target: LoginTarget | null = null;
  private salt: Uint8Array | null = null;
  private scram: ScramServerExchange | null = null;
  /** The user is unknown or has no password: the exchange runs to the end, then fails like a wrong password. */
  private doomed = false;
  /** replication=true or database in the startup packet: the client gets a server of its own, passed through. */
  private replication: LoginFrom["replication"] = null;

  constructor(
    private readonly client: ClientConn,
    private readonly ctx: ClientContext,
  ) {}

  frame(buf: Uint8Array, start: number, end: number): void {
    const c = this.client;
    if (this.step === "tls") {
      // Only the TLS handshake may follow an SSLRequest: anything else is plain text slipped in ahead of it.
      log.warn("client", "plain-text message after SSLRequest, before the TLS handshake: connection closed", { client: c.id, addr: c.remote });
      c.close("plain-text bytes after SSLRequest");
      return;
    }
    if (this.step === "startup") {
      this.startup(buf, start, end);
      return;
    }
    if (this.step === "lookup") throw new ProtocolError("unexpected message before the authentication request");
    if (buf[start] !== F_PASSWORD) throw new ProtocolError(`expected a password message, got '${String.fromCharCode(buf[start]!)}'`);
    switch (this.step) {
      case "cleartext":
        this.finish(!this.doomed && this.checkCleartext(passwordText(buf, start, end)));
        return;
      case "md5":
        this.finish(!this.doomed && verifyMd5Response(c.user, this.target!.password!, this.salt!, passwordText(buf, start, end)));
        return;
      case "sasl-initial": {
        const { mechanism, data } = parseSaslInitial(buf, start, end);
        const plusOffered = this.scram!.channelBinding !== null;
        if (mechanism !== "SCRAM-SHA-256" && !(mechanism === "SCRAM-SHA-256-PLUS" && plusOffered)) {
          c.fatal("28000", `pgbun: SASL mechanism ${mechanism} is not supported; use ${plusOffered ? "SCRAM-SHA-256-PLUS or " : ""}SCRAM-SHA-256`);
          return;
        }
        const r = this.scram!.clientFirst(data, mechanism);
        if ("error" in r) {
          c.fatal("08P01", `pgbun: malformed SCRAM message: ${r.error}`);
          return;
        }
        this.step = "sasl-final";
        c.outbox.send(authRequest(AUTH_SASL_CONTINUE, r.reply));
        return;
      }
      case "sasl-final": {
        const r = this.scram!.clientFinal(passwordText(buf, start, end));
        if ("error" in r || this.doomed) {
          this.finish(false);
          return;
        }
        c.outbox.send(authRequest(AUTH_SASL_FINAL, r.reply));
        // The proof gives the client key: with it pgbun can log in to a server that stores the same verifier.
        const secret = this.target!.password!;
        if (isScramVerifier(secret) && this.scram!.clientKey !== null) rememberScramKeys(secret, this.scram!.clientKey);
        this.finish(true);
        return;
      }
    }
  }

  private startup(buf: Uint8Array, start: number, end: number): void {
    const c = this.client;
    const p = parseStartup(buf, start, end);
    switch (p.kind) {
      case "ssl":
        if (acceptSslRequest(c, () => (this.step = "startup"))) this.step = "tls";
        // With client_tls_sslmode = disable, 'N' lets sslmode=prefer clients continue in plain text.
        else c.outbox.send(SSL_REFUSED);
        return;
      case "gssenc":
        c.outbox.send(SSL_REFUSED);
        return;
      case "cancel":
        this.ctx.cancel(p.pid, p.secret);
        c.close("cancel request");
        return;
    }
    c.framer.startup = false;
    if (clientTlsRequired() && !clientEncrypted(c)) {
      c.fatal("28000", "pgbun: TLS required (client_tls_sslmode): connect with sslmode=require or stricter");
      return;
    }
    const user = p.params.get("user");
    if (!user) {
      c.fatal("28000", "no PostgreSQL user name specified in startup packet");
      return;
    }
    c.user = user;
    c.database = p.params.get("database") || user;
    c.startupParams = p.params;
    const unsupported = [...p.params.keys()].filter((k) => k.startsWith("_pq_."));
    if (p.minor > 0 || unsupported.length > 0) c.outbox.send(negotiateProtocolVersion(0, unsupported));
    const replication = replicationKind(p.params.get("replication"));
    if (replication === undefined) {
      c.fatal("22023", `invalid value for parameter "replication": "${p.params.get("replication")}"`);
      return;
    }
    this.replication = replication;
    if (c.overLimit) {
      c.fatal("53300", `pgbun: too many client connections (max_client_conn = ${this.ctx.settings.max_client_conn}); raise max_client_conn`);
      return;
    }
    const local = cameViaUnixSocket(c);
    const found = this.ctx.lookup(c.database, user, { local, tls: clientEncrypted(c), addr: local ? "" : c.remote, replication });
    if (!(found instanceof Promise)) {
      this.begin(found);
      return;
    }
    // auth_query is looking the user up; the client waits for its authentication request meanwhile.
    this.step = "lookup";
    found.then(
      (t) => {
        if (c.state !== "login") return;
        this.step = "startup";
        this.begin(t);
      },
      (err: Error) => {
        log.error("client", "user lookup failed", { client: c.id, user, stack: err.stack });
        c.fatal("XX000", "pgbun internal error");
      },
    );
  }

  /** The user is known (or known not to exist): ask for the method's proof, or refuse. */
  private begin(target: LoginTarget): void {
    const c = this.client;
    const user = c.user;
    this.target = target;
    const secret = target.password;
    const method = target.method;
    if (typeof method !== "string") {
      log.warn("client", "login refused", { client: c.id, user, database: c.database, addr: c.remote, reason: method.refuse[1] });
      c.fatal(method.refuse[0], method.refuse[1]);
      return;
    }
    if (method === "cert") {
      // As PostgreSQL: a verified client certificate whose common name is the user (client_tls_sslmode verify-ca or verify-full).
      if (certificateName(c) !== user) {
        c.fatal("28000", `pgbun: certificate authentication failed for user "${user}": it needs TLS with a client certificate signed by client_tls_ca_file whose CN is the user`);
        return;
      }
      this.finish(true);
      return;
    }
    if (method === "trust") {
      if (!this.target.userKnown) {
        c.fatal("28000", `pgbun: no such user "${user}": add [users.${user}] to the config, or the user to auth_file`);
        return;
      }
      this.finish(true);
      return;
    }
    this.doomed = secret === undefined;
    if (method === "plain") {
      this.step = "cleartext";
      c.outbox.send(authRequest(AUTH_CLEARTEXT));
    } else if ((method === "md5" && secret !== undefined && !isScramVerifier(secret)) || (secret !== undefined && isMd5Hash(secret))) {
      // md5 as asked, or because only an md5 hash is stored (SCRAM cannot be done from it). A user that does not
      // exist gets SCRAM, as from PostgreSQL with password_encryption = scram-sha-256: like most real users today.
      this.step = "md5";
      this.salt = randomBytes(4);
      c.outbox.send(authRequest(AUTH_MD5, this.salt));
    } else {
      const verifier = secret === undefined ? decoyFor(user) : verifierFor(secret);
      if (verifier === null) {
        log.error("client", "stored SCRAM verifier does not parse", { user });
        this.doomed = true;
      }
      this.scram = new ScramServerExchange(verifier ?? decoyFor(user));
      this.step = "sasl-initial";
      // Over TLS, SCRAM-SHA-256-PLUS binds the proof to this connection (channel_binding=require); never over plain text.
      const binding = clientChannelBinding(c);
      this.scram.channelBinding = binding;
      c.outbox.send(authSasl(binding !== null ? ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"] : ["SCRAM-SHA-256"]));
    }
  }

  private checkCleartext(given: string): boolean {
    const secret = this.target!.password!;
    if (isMd5Hash(secret)) return md5PasswordHash(this.client.user, given) === secret;
    if (isScramVerifier(secret)) {
      const v = parseScramVerifier(secret);
      if (!v) return false;
      const again = scramVerifierFromPassword(given, v.salt, v.iterations);
      return Buffer.from(again.storedKey).equals(Buffer.from(v.storedKey));
    }
    return given.length === secret.length && Buffer.from(given).equals(Buffer.from(secret));
  }

  /**
   * The only login refused for lack of privilege is the admin console's. The user has proven its password by now,
   * so naming the settings that let it in tells it nothing about anyone else.
   */
  private refuseConsole(): void {
    const c = this.client;
    const message = `permission denied for the admin console: user "${c.user}" is in neither admin_users nor stats_users`;
    const hint = "add it to admin_users (every command) or stats_users (SHOW only): in the config file, then reload (SIGHUP), or with --admin-users or --stats-users at start";
    c.outbox.send(errorResponse({ severity: "FATAL", code: INSUFFICIENT_PRIVILEGE, message, hint }));
    c.close(message);
  }

  private finish(ok: boolean): void {
    const c = this.client;
    if (!ok) {
      log.warn("client", "authentication failed", { client: c.id, user: c.user, database: c.database, addr: c.remote });
      c.fatal("28P01", `password authentication failed for user "${c.user}"`);
      return;
    }
    const refusal = this.target!.refusal();
    if (refusal !== null && refusal[0] === INSUFFICIENT_PRIVILEGE) {
      this.refuseConsole();
      return;
    }
    if (refusal !== null) {
      c.fatal(refusal[0], refusal[1]);
      return;
    }
    if (this.replication !== null) {
      passReplication(c, this.target!.server(), this.replication);
      return;
    }
    const pool = this.target!.pool();
    if (pool === null) {
      c.fatal("3D000", `database "${c.database}" does not exist`);
      return;
    }
    c.outbox.send(AUTH_OK_MSG);
    c.authenticated(pool);
  }
}
