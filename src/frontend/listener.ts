// Accepts client connections with Bun.listen and hands each socket to its ClientConn.

import type { SocketHandler, TCPSocketListener } from "bun";
import { log } from "../log.ts";
import { beginBatch, endBatch } from "../net/outbox.ts";
import { ClientConn } from "./client.ts";
import { acceptDirectTls, TLS_HANDSHAKE_RECORD } from "./client-tls.ts";
import type { ClientContext } from "./context.ts";

export function listen(ctx: ClientContext, host: string, port: number, reusePort = false): TCPSocketListener<ClientConn> {
  const handlers: SocketHandler<ClientConn> = {
    // Plain Uint8Arrays: cheaper to make than Buffers, and all pgbun needs.
    binaryType: "uint8array",
    open(socket) {
      socket.data = new ClientConn(socket, ctx);
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
  // reusePort is honoured on Linux though Bun's types for listen() do not list it.
  return Bun.listen<ClientConn>({ hostname: host, port, socket: handlers, ...({ reusePort } as object) });
}
