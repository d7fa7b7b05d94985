import { describe, expect, test } from "bun:test";
import { type CheckInFacts, checkIn } from "./check-in.ts";

const I = 0x49;
const T = 0x54;
const E = 0x45;

const base: CheckInFacts = {
  mode: "transaction",
  client: "linked",
  quiet: true,
  txStatus: I,
  resetDue: false,
  cancelsInFlight: 0,
  dead: false,
  retire: false,
  draining: false,
  overSize: false,
  expired: false,
  unlistenDue: false,
  pinned: false,
};

type Row = [Partial<CheckInFacts>, string];

// Every condition in checkIn() is the reason for at least one row's answer: delete it and a row fails.
const table: Row[] = [
  // a linked client in session mode keeps its server whatever it does
  [{ mode: "session" }, "keep"],
  [{ mode: "session", txStatus: T }, "keep"],
  [{ mode: "session", quiet: false }, "keep"],
  [{ mode: "session", retire: true }, "keep"],
  // transaction mode: only idle and quiet goes back
  [{}, "release"],
  [{ txStatus: T }, "keep"],
  [{ txStatus: E }, "keep"],
  [{ quiet: false }, "keep"],
  [{ quiet: false, txStatus: T }, "keep"],
  // statement mode: a block left open is refused
  [{ mode: "statement" }, "release"],
  [{ mode: "statement", txStatus: T }, "refuse"],
  [{ mode: "statement", txStatus: E }, "refuse"],
  [{ mode: "statement", quiet: false }, "keep"],
  [{ mode: "statement", quiet: false, txStatus: T }, "keep"],
  // a dead server closes, linked or not, in any mode
  [{ dead: true }, "close:server_fatal"],
  [{ dead: true, mode: "session" }, "close:server_fatal"],
  [{ dead: true, client: "none", quiet: false }, "close:server_fatal"],
  // free servers are kept only if nothing says otherwise, in this order
  [{ cancelsInFlight: 1 }, "wait"],
  [{ cancelsInFlight: 1, retire: true }, "wait"],
  [{ retire: true }, "close:retired"],
  [{ draining: true }, "close:pool_draining"],
  [{ overSize: true }, "close:pool_shrunk"],
  [{ expired: true }, "close:server_lifetime"],
  [{ retire: true, expired: true }, "close:retired"],
  [{ txStatus: T, retire: true }, "keep"],
  // a server that ran a client's LISTEN is cleaned of it before anyone else gets it
  [{ unlistenDue: true }, "clean:unlisten"],
  [{ unlistenDue: true, mode: "session" }, "keep"],
  [{ unlistenDue: true, txStatus: T }, "keep"],
  [{ client: "none", unlistenDue: true }, "clean:unlisten"],
  [{ client: "left", unlistenDue: true }, "clean:unlisten"],
  [{ client: "left", unlistenDue: true, resetDue: true }, "clean:reset+unlisten"],
  [{ client: "left", unlistenDue: true, txStatus: T }, "clean:rollback+unlisten"],
  // a client holding session state on its server keeps it, and the state goes with it when it leaves
  [{ pinned: true }, "keep"],
  [{ pinned: true, mode: "statement" }, "keep"],
  [{ pinned: true, client: "left" }, "clean:reset"],
  [{ pinned: true, client: "left", txStatus: T }, "clean:rollback+reset"],
  // the client left
  [{ client: "left" }, "release"],
  [{ client: "left", mode: "session" }, "release"],
  [{ client: "left", quiet: false }, "close:client_left_mid_request"],
  [{ client: "left", quiet: false, txStatus: T }, "close:client_left_mid_request"],
  [{ client: "left", txStatus: T }, "clean:rollback"],
  [{ client: "left", txStatus: E }, "clean:rollback"],
  [{ client: "left", resetDue: true }, "clean:reset"],
  [{ client: "left", resetDue: true, txStatus: T }, "clean:rollback+reset"],
  [{ client: "left", cancelsInFlight: 2 }, "wait"],
  [{ client: "left", overSize: true }, "close:pool_shrunk"],
  // no client: cleanup finishing, login done, cancel landed
  [{ client: "none" }, "release"],
  [{ client: "none", quiet: false }, "keep"],
  [{ client: "none", txStatus: T }, "close:transaction_left_open"],
  [{ client: "none", txStatus: E }, "close:transaction_left_open"],
  [{ client: "none", cancelsInFlight: 1 }, "wait"],
  [{ client: "none", draining: true }, "close:pool_draining"],
  [{ client: "none", mode: "statement" }, "release"],
];

function show(f: CheckInFacts): string {
  const d = checkIn(f);
  switch (d.action) {
    case "close":
      return `close:${d.reason.code}`;
    case "clean":
      return `clean:${[d.rollback ? "rollback" : "", d.reset ? "reset" : "", d.unlisten ? "unlisten" : ""].filter(Boolean).join("+")}`;
    default:
      return d.action;
  }
}

describe("checkIn", () => {
  for (const [over, want] of table) {
    test(`${JSON.stringify(over)} -> ${want}`, () => {
      expect(show({ ...base, ...over })).toBe(want);
    });
  }
});
