// A client's startup phase: SSL/GSS negotiation, cancel requests, the startup packet and password authentication.

import { randomBytes } from "node:crypto";
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
import type { ClientContext, LoginTarget } from "./context.ts";

type Step = "startup" | "tls" | "cleartext" | "md5" | "sasl-initial" | "sasl-final";

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

/** A verifier nobody knows the password of: unknown users go through the same exchange and fail the same way. */
let decoy: ScramVerifier | null = null;

export class Login {
  private step: Step = "startup";
  private target: LoginTarget | null = null;
  private salt: Uint8Array | null = null;
  private scram: ScramServerExchange | null = null;
  /** The user is unknown or has no password: the exchange runs to the end, then fails like a wrong password. */
  private doomed = false;

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
    for (const [k, v] of p.params) c.startupParams.set(k, v);
    const unsupported = [...p.params.keys()].filter((k) => k.startsWith("_pq_."));
    if (p.minor > 0 || unsupported.length > 0) c.outbox.send(negotiateProtocolVersion(0, unsupported));
    if (p.params.has("replication") && p.params.get("replication") !== "false") {
      c.fatal("08P01", "pgbun: replication connections are not supported; connect to PostgreSQL directly");
      return;
    }
    if (c.overLimit) {
      c.fatal("53300", `pgbun: too many client connections (max_client_conn = ${this.ctx.settings.max_client_conn}); raise max_client_conn`);
      return;
    }
    this.target = this.ctx.lookup(c.database, user);
    const secret = this.target.password;
    const method = this.ctx.settings.auth_type;
    if (method === "trust") {
      if (!this.target.userKnown) {
        c.fatal("28000", `pgbun: no such user "${user}": add [users.${user}] to the config`);
        return;
      }
      this.finish(true);
      return;
    }
    this.doomed = secret === undefined;
    if (method === "plain") {
      this.step = "cleartext";
      c.outbox.send(authRequest(AUTH_CLEARTEXT));
    } else if ((method === "md5" && !(secret !== undefined && isScramVerifier(secret))) || (secret !== undefined && isMd5Hash(secret))) {
      // md5 as asked, or because only an md5 hash is stored (SCRAM cannot be done from it)
      this.step = "md5";
      this.salt = randomBytes(4);
      c.outbox.send(authRequest(AUTH_MD5, this.salt));
    } else {
      const verifier = secret === undefined ? (decoy ??= scramVerifierFromPassword(randomBytes(24).toString("hex"))) : verifierFor(secret);
      if (verifier === null) {
        log.error("client", "stored SCRAM verifier does not parse", { user });
        this.doomed = true;
      }
      this.scram = new ScramServerExchange(verifier ?? (decoy ??= scramVerifierFromPassword(randomBytes(24).toString("hex"))));
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
    const pool = this.target!.pool();
    if (pool === null) {
      c.fatal("3D000", `database "${c.database}" does not exist`);
      return;
    }
    c.outbox.send(AUTH_OK_MSG);
    c.authenticated(pool);
  }
}
