// A CancelRequest on a connection of its own, as PostgreSQL requires; `done` runs once whatever happens.

import { connectSocket } from "../net/address.ts";
import { cancelRequest } from "../protocol/messages.ts";

export function sendCancel(host: string, port: number, pid: number, secret: number, done: () => void): void {
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    done();
  };
  connectSocket<undefined>(
    host,
    port,
    {
      open: (s) => {
        s.write(cancelRequest(pid, secret));
        s.flush();
      },
      data: () => {},
      close: finish,
      connectError: finish,
      error: finish,
    },
    undefined,
  ).catch(finish);
}
