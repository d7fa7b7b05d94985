// Accepts client connections with Bun.listen (TCP, and the Unix socket in unix_socket_dir) and hands each socket to its ClientConn.

import type { SocketHandler, TCPSocketListener } from "bun";
import { chmodSync, existsSync, rmSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { log } from "../log.ts";
import { beginBatch, endBatch } from "../net/outbox.ts";
import { ClientConn } from "./client.ts";
import { acceptDirectTls, TLS_HANDSHAKE_RECORD } from "./client-tls.ts";
import type { ClientContext } from "./context.ts";
import { markUnixClient } from "./unix-clients.ts";

export function listen(ctx: ClientContext, host: string, port: number, reusePort = false): TCPSocketListener<ClientConn> {
  // reusePort is honoured on Linux though Bun's types for listen() do not list it.
  return Bun.listen<ClientConn>({ hostname: host, port, socket: clientHandlers(ctx, false), ...({ reusePort } as object) });
}

/**
 * The Unix socket PostgreSQL clients find by folder and port (psql -h DIR -p PORT): DIR/.s.PGSQL.PORT, with the file
 * mode asked for. A socket file left by a process that is gone is replaced; one a live process answers on is not.
 */
export async function listenUnix(ctx: ClientContext, dir: string, port: number, mode: number): Promise<{ path: string; stop(closeActive: boolean): void }> {
  const path = join(dir, `.s.PGSQL.${port}`);
  if (existsSync(path)) {
    if (await answers(path)) {
      throw new Error(`another process listens on ${path}; stop it, or choose another unix_socket_dir or port`);
    }
    unlinkSync(path);
  }
  const server = Bun.listen<ClientConn>({ unix: path, socket: clientHandlers(ctx, true) });
  chmodSync(path, mode);
  return {
    path,
    stop(closeActive) {
      server.stop(closeActive);
      rmSync(path, { force: true });
    },
  };
}

function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    Bun.connect({
      unix: path,
      socket: {
        open(s) {
          s.end();
          resolve(true);
        },
        data() {},
        connectError() {
          resolve(false);
        },
      },
    }).catch(() => resolve(false));
  });
}

function clientHandlers(ctx: ClientContext, unix: boolean): SocketHandler<ClientConn> {
  return {
    // Plain Uint8Arrays: cheaper to make than Buffers, and all pgbun needs.
    binaryType: "uint8array",
    open(socket) {
      socket.data = new ClientConn(socket, ctx);
      if (unix) markUnixClient(socket.data);
    },
    data(socket, chunk) {
      const c = socket.data;
      // PostgreSQL 17's direct TLS: the connection's first bytes are a TLS handshake, not a startup packet.
      if (c.state === "login" && chunk[0] === TLS_HANDSHAKE_RECORD && acceptDirectTls(c, chunk)) return;
      const began = beginBatch();
      c.onData(chunk);
      endBatch(began);
    },
    drain(socket) {
      socket.data.outbox.drain();
    },
    close(socket) {
      socket.data?.onClose();
    },
    error(socket, err) {
      log.debug("client", "socket error", { client: socket.data?.id, error: err.message });
    },
    end(socket) {
      socket.end();
    },
  };
}
