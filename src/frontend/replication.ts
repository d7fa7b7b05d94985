// Replication connections (replication=true or database in the startup packet) are never pooled: once the client has
// logged in to pgbun, it gets a server connection of its own, opened with its startup parameters, and every byte is
// passed through both ways until either side leaves, whatever the pool mode (as PgBouncer 1.23 does). pg_recvlogical,
// pg_basebackup and logical replication clients such as postgres.js subscribe() work through pgbun this way.

import type { Socket, SocketHandler } from "bun";
import { ServerAuth } from "../backend/server-auth.ts";
import type { ServerTarget } from "../backend/server-types.ts";
import { log } from "../log.ts";
import { connectSocket, describeTarget } from "../net/address.ts";
import { beginBatch, endBatch, Outbox } from "../net/outbox.ts";
import { Framer } from "../protocol/framer.ts";
import { parseErrorFields, startupMessage } from "../protocol/messages.ts";
import { AUTH_OK, B_AUTHENTICATION, B_ERROR_RESPONSE } from "../protocol/tags.ts";
import { readInt32 } from "../protocol/writer.ts";
import { certificateProblem, peerEndPoint, requiresTls, type ServerTls, serverTls, SSL_NO, SSL_REQUEST, SSL_YES } from "../net/tls.ts";
import type { ClientConn } from "./client.ts";

export type ReplicationKind = "physical" | "logical";

const kinds = new WeakMap<ClientConn, ReplicationKind>();

/** For SHOW CLIENTS: "physical", "logical", or "none" for a pooled client. */
export function replicationOf(c: ClientConn): ReplicationKind | "none" {
  return kinds.get(c) ?? "none";
}

/** The client has proven who it is; `target` is its database's server, null when there is no such database. */
export function passReplication(c: ClientConn, target: ServerTarget | null, kind: ReplicationKind): void {
  if (target === null) {
    // PostgreSQL ignores the database of a physical replication connection, but pgbun needs it to find the server.
    const hint =
      kind === "physical"
        ? ` (physical replication clients such as pg_basebackup ask for database "${c.database}": add a [databases.${c.database}] entry for the server, or a wildcard [databases."*"])`
        : "";
    c.fatal("3D000", `database "${c.database}" does not exist${hint}`);
    return;
  }
  kinds.set(c, kind);
  new ReplicationRelay(c, target).connect();
}

/** Startup parameters that pgbun sets itself on the server connection. */
const REPLACED = new Set(["user", "database"]);

class ReplicationRelay {
  private socket: Socket<ReplicationRelay> | null = null;
  private outbox: Outbox | null = null;
  private readonly framer: Framer;
  private auth: ServerAuth | null;
  /** AuthenticationOk came: from here on the server's messages go to the client as they are. */
  private passing = false;
  private closed = false;
  /** SSLRequest sent (server_tls_sslmode prefer or stricter): the next byte says whether TLS follows. */
  private tls: ServerTls | null = null;

  constructor(
    private readonly client: ClientConn,
    private readonly target: ServerTarget,
  ) {
    this.framer = new Framer(client.ctx.settings.max_packet_size);
    this.auth = new ServerAuth(target.user, target.password);
  }

  connect(): void {
    const c = this.client;
    c.relay = this;
    connectSocket(this.target.host, this.target.port, HANDLERS, this).catch((err: Error) => this.connectFailed(err.message));
    log.info("client", "replication connection passed through", {
      client: c.id,
      user: c.user,
      database: c.database,
      replication: kinds.get(c),
      server: describeTarget(this.target.host, this.target.port),
    });
  }

  opened(socket: Socket<ReplicationRelay>): void {
    if (this.closed) {
      socket.end();
      return;
    }
    this.socket = socket;
    // The login sends credentials: TLS first when server_tls_sslmode asks for it, as the pools' connections do.
    const tls = serverTls();
    if (tls !== null && tls.mode !== "allow" && !this.target.host.startsWith("/")) {
      this.tls = tls;
      if (socket.write(SSL_REQUEST) !== SSL_REQUEST.length) this.fail("pgbun: could not send SSLRequest to the server");
      return;
    }
    this.startup(socket);
  }

  private startup(socket: Socket<ReplicationRelay>): void {
    this.socket = socket;
    this.outbox = new Outbox(socket as Socket<unknown>, (on) => this.client.pauseReading(on));
    const params: Record<string, string> = { user: this.target.user, database: this.target.database };
    for (const [k, v] of this.client.startupParams) if (!REPLACED.has(k)) params[k] = v;
    this.outbox.send(startupMessage(params));
  }

  /** The server's one-byte answer to SSLRequest. */
  private sslAnswer(socket: Socket<ReplicationRelay>, chunk: Uint8Array): void {
    const tls = this.tls!;
    this.tls = null;
    if (chunk.length !== 1) return this.fail("pgbun: the server sent unexpected bytes after its answer to SSLRequest");
    if (chunk[0] === SSL_NO) {
      if (requiresTls(tls.mode)) return this.fail(`pgbun: the server does not support TLS, and server_tls_sslmode = ${tls.mode} refuses plain text`);
      return this.startup(socket);
    }
    if (chunk[0] !== SSL_YES) return this.fail(`pgbun: the server answered SSLRequest with byte ${chunk[0]}, neither S nor N`);
    try {
      const [plain] = socket.upgradeTLS<ReplicationRelay>({ tls: tls.options(this.target.host), data: this, socket: tlsHandlers(tls) });
      // The plain side keeps firing with the ciphertext, which the TLS socket reads.
      plain.data = DETACHED;
    } catch (err) {
      this.fail(`pgbun: TLS to the server could not start: ${(err as Error).message}`);
    }
  }

  /** The TLS handshake with the server ended: log in over the TLS socket, or fail as server_tls_sslmode says. */
  handshake(socket: Socket<ReplicationRelay>, tls: ServerTls, ok: boolean, err: Error | null): void {
    if (this.closed) return;
    const problem = certificateProblem(tls.mode, ok, err);
    if (problem !== null) return this.fail(`pgbun: ${problem}`);
    this.auth!.channelBinding = () => peerEndPoint(socket as Socket<unknown>);
    this.startup(socket);
  }

  connectFailed(message: string): void {
    if (this.closed) return;
    this.closed = true;
    this.client.fatal("08006", `pgbun: cannot connect to the server for database "${this.client.database}": ${message}`);
  }

  fromServer(socket: Socket<ReplicationRelay>, chunk: Uint8Array): void {
    if (this.closed) return;
    if (this.tls !== null) return this.sslAnswer(socket, chunk);
    try {
      this.framer.feed(chunk, this);
    } catch (err) {
      this.fail(`pgbun: replication server connection failed: ${(err as Error).message}`);
    }
  }

  frame(tag: number, buf: Uint8Array, start: number, end: number): void {
    if (this.passing) {
      this.client.outbox.forward(buf, start, end);
      return;
    }
    if (tag === B_AUTHENTICATION) {
      if (readInt32(buf, start + 5) === AUTH_OK) {
        this.passing = true;
        this.auth = null;
        // From now on the client is a connection of the server's, not one waiting to log in.
        this.client.state = "active";
        this.client.outbox.forward(buf, start, end);
        return;
      }
      const reply = this.auth!.handle(buf, start, end);
      if (reply !== null) this.outbox!.send(reply);
      return;
    }
    if (tag === B_ERROR_RESPONSE) {
      // The server refused the login: its own FATAL is what the client needs to see.
      const f = parseErrorFields(buf, start, end);
      log.warn("client", "replication login to the server failed", { client: this.client.id, error: f.get("M") });
      this.client.outbox.forward(buf, start, end);
      this.closed = true;
      this.client.close(`replication server login failed: ${f.get("M") ?? ""}`);
      this.socket?.end();
    }
  }

  /** Raw bytes from the client (ClientConn hands them over once it is relayed). */
  fromClient(chunk: Uint8Array): void {
    if (!this.closed && this.outbox !== null) this.outbox.forward(chunk, 0, chunk.length);
  }

  /** The client's outbox is full or has room again: the server is read accordingly. */
  pressure(on: boolean): void {
    if (this.socket === null) return;
    if (on) this.socket.pause();
    else this.socket.resume();
  }

  drain(): void {
    this.outbox?.drain();
  }

  /** The client left. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.outbox !== null) this.outbox.end();
    else this.socket?.end();
  }

  /** The server left or broke. */
  serverGone(why: string): void {
    this.outbox?.dispose();
    if (this.closed) return;
    this.closed = true;
    this.client.close(`replication server connection ended (${why})`);
  }

  private fail(message: string): void {
    if (this.closed) return;
    this.closed = true;
    this.client.fatal("08006", message);
    this.socket?.end();
  }
}

/** What the plain socket's handlers see once TLS has taken over: nothing to do. */
const DETACHED = { fromServer() {}, drain() {}, serverGone() {}, connectFailed() {}, opened() {} } as unknown as ReplicationRelay;

/** The TLS socket's handlers: the plain ones, plus the handshake's outcome. */
function tlsHandlers(tls: ServerTls): SocketHandler<ReplicationRelay> {
  return {
    ...HANDLERS,
    open() {},
    handshake(socket, ok, err) {
      socket.data.handshake(socket, tls, ok, err);
    },
  };
}

const HANDLERS: SocketHandler<ReplicationRelay> = {
  binaryType: "uint8array",
  open(socket: Socket<ReplicationRelay>) {
    socket.data.opened(socket);
  },
  data(socket: Socket<ReplicationRelay>, chunk: Uint8Array) {
    const began = beginBatch();
    socket.data.fromServer(socket, chunk);
    endBatch(began);
  },
  drain(socket: Socket<ReplicationRelay>) {
    socket.data.drain();
  },
  close(socket: Socket<ReplicationRelay>, err?: Error) {
    socket.data.serverGone(err ? `connection error: ${err.message}` : "the server closed the connection");
  },
  connectError(socket: Socket<ReplicationRelay>, err: Error) {
    socket.data.connectFailed(err.message);
  },
  error() {},
  end(socket: Socket<ReplicationRelay>) {
    socket.end();
  },
};
