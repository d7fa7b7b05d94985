// Where a server connection goes: a host and port over TCP, or, for a host that is a folder (PgBouncer's and libpq's
// host=/var/run/postgresql), the Unix socket .s.PGSQL.PORT in it.

import type { Socket, SocketHandler } from "bun";
import { join } from "node:path";

export function connectSocket<T>(host: string, port: number, socket: SocketHandler<T>, data: T): Promise<Socket<T>> {
  return host.startsWith("/") ? Bun.connect<T>({ unix: join(host, `.s.PGSQL.${port}`), socket, data }) : Bun.connect<T>({ hostname: host, port, socket, data });
}

/** host:port, or the socket's path, for messages. */
export function describeTarget(host: string, port: number): string {
  return host.startsWith("/") ? join(host, `.s.PGSQL.${port}`) : `${host}:${port}`;
}
