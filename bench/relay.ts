// A bare Bun TCP relay: every client connection gets its own upstream connection and bytes pass through unparsed.
// It is the floor for any pooler built on Bun's sockets: what Bun's event loop and socket calls cost per message
// before pooling does anything. Run by bench/floor.ts as `bun bench/relay.ts LISTEN_PORT UPSTREAM_PORT`.

import type { Socket } from "bun";

interface End {
  peer: Socket<End> | null;
  /** Bytes for this socket that the kernel did not take yet. */
  queue: Uint8Array[];
  /** On a client: what it sent before its upstream connection was open. */
  early: Uint8Array[];
}

const [listenPort, upstreamPort] = process.argv.slice(2).map(Number);
if (!Number.isInteger(listenPort) || !Number.isInteger(upstreamPort) || !(listenPort! > 0 && upstreamPort! > 0)) {
  console.error("usage: bun bench/relay.ts LISTEN_PORT UPSTREAM_PORT");
  process.exit(2);
}

function send(to: Socket<End>, bytes: Uint8Array): void {
  if (to.data.queue.length > 0) {
    to.data.queue.push(bytes);
    return;
  }
  const n = to.write(bytes);
  if (n >= 0 && n < bytes.length) to.data.queue.push(bytes.subarray(n));
}

function drain(s: Socket<End>): void {
  const q = s.data.queue;
  while (q.length > 0) {
    const b = q[0]!;
    const n = s.write(b);
    if (n < 0) return;
    if (n < b.length) {
      q[0] = b.subarray(n);
      return;
    }
    q.shift();
  }
}

Bun.listen<End>({
  hostname: "127.0.0.1",
  port: listenPort!,
  socket: {
    binaryType: "uint8array",
    open(client) {
      client.data = { peer: null, queue: [], early: [] };
      void Bun.connect<End>({
        hostname: "127.0.0.1",
        port: upstreamPort!,
        data: { peer: client, queue: [], early: [] },
        socket: {
          binaryType: "uint8array",
          open(up) {
            client.data.peer = up;
            for (const b of client.data.early.splice(0)) send(up, b);
          },
          data(up, bytes) {
            send(up.data.peer!, bytes);
          },
          drain,
          close(up) {
            up.data.peer?.end();
          },
          connectError() {
            client.end();
          },
        },
      });
    },
    data(client, bytes) {
      const up = client.data.peer;
      if (up === null) client.data.early.push(bytes);
      else send(up, bytes);
    },
    drain,
    close(client) {
      client.data.peer?.end();
    },
  },
});
